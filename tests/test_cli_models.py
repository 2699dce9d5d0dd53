"""`biosegment models` still lists models; `models export` and `models import` move them
between BioSegment and other tools."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import CliRunner

from biosegment.cli import main


@pytest.fixture
def data_folder(tmp_path, neuralnets_fixtures):
    root = tmp_path / "data"
    (root / "models").mkdir(parents=True)
    (root / "EM").mkdir()
    shutil.copy(
        neuralnets_fixtures / "unet2d_fm8_l3_batch.pytorch", root / "models" / "tiny.pytorch"
    )
    return root


def invoke(root, *args):
    result = CliRunner().invoke(main, ["--data", str(root), *args], catch_exceptions=False)
    return result


def test_models_listing_keeps_working_as_a_group(data_folder):
    listed = invoke(data_folder, "models", "--json")
    assert listed.exit_code == 0, listed.output
    assert [m["name"] for m in json.loads(listed.output)] == ["tiny"]
    table = invoke(data_folder, "models")
    assert table.exit_code == 0 and "tiny" in table.output and "NETWORK" in table.output


def test_export_onnx_and_torchscript_by_name(data_folder, tmp_path, neuralnets_fixtures):
    io = np.load(neuralnets_fixtures / "unet2d_fm8_l3_batch_io.npz")
    out = tmp_path / "out"
    result = invoke(
        data_folder,
        "models",
        "export",
        "tiny",
        "--format",
        "onnx",
        "-o",
        str(out / "tiny.onnx"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["format"] == "onnx" and document["bytes"] > 10_000
    session = onnxruntime.InferenceSession(
        str(out / "tiny.onnx"), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(session.run(None, {"raw": io["input"]})[0], io["output"], atol=2e-4)
    result = invoke(
        data_folder,
        "models",
        "export",
        str(data_folder / "models" / "tiny.pytorch"),
        "--format",
        "torchscript",
        "-o",
        str(out / "tiny.torchscript.pt"),
    )
    assert result.exit_code == 0 and "Exported tiny as torchscript" in result.output
    scripted = torch.jit.load(str(out / "tiny.torchscript.pt"))
    with torch.no_grad():
        np.testing.assert_allclose(
            scripted(torch.from_numpy(io["input"])).numpy(), io["output"], atol=2e-4
        )


def test_bioimageio_package_round_trip_through_the_cli(data_folder, tmp_path):
    package = tmp_path / "tiny.bioimageio.zip"
    result = invoke(
        data_folder,
        "models",
        "export",
        "tiny",
        "--format",
        "bioimageio",
        "-o",
        str(package),
        "--author",
        "Ada Lovelace",
        "--license",
        "CC-BY-4.0",
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(package) as archive:
        assert "rdf.yaml" in archive.namelist()
    result = invoke(data_folder, "models", "import", str(package), "--name", "tiny-zoo", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "model": "tiny-zoo",
        "location": "models/tiny-zoo/model.pytorch",
    }
    names = sorted(m["name"] for m in json.loads(invoke(data_folder, "models", "--json").output))
    assert names == ["tiny", "tiny-zoo"]


def test_unknown_model_and_bad_package_are_one_line_errors(data_folder, tmp_path):
    result = invoke(data_folder, "models", "export", "nope", "--format", "onnx")
    assert result.exit_code == 1 and "nope" in result.output
    assert "Traceback" not in result.output
    folder = tmp_path / "empty-package"
    folder.mkdir()
    result = invoke(data_folder, "models", "import", str(folder))
    assert result.exit_code == 1 and "no rdf.yaml in the package folder" in result.output
