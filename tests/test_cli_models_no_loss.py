"""`models export` and `models import` never lose what a person has: an output folder keeps
its files, an existing model is replaced only on request (and then kept in the trash), and a
package cannot make an import read files outside it or unpack more than a bound."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import CliRunner

import biosegment.engine.bioimageio  # noqa: F401  (torch and the importer load before tracing)
from biosegment.cli import main
from biosegment.engine import load_model, save_model

DEMO_MODEL = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "model"


def invoke(root, *args):
    return CliRunner().invoke(main, ["--data", str(root), *args], catch_exceptions=False)


def file_digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def data_folder(tmp_path, neuralnets_fixtures):
    """A data folder whose model `tiny` is a trained model folder: weights, a card with its
    training record, and TensorBoard logs."""
    root = tmp_path / "data"
    (root / "EM").mkdir(parents=True)
    model, card = load_model(neuralnets_fixtures / "unet2d_fm8_l3_batch.pytorch")
    card.name = "tiny"
    card.training = {"datasets": ["EPFL"], "epochs": 12, "note": "three days of annotation"}
    save_model(model, card, root / "models" / "tiny")
    logs = root / "models" / "tiny" / "logs"
    logs.mkdir()
    (logs / "events.out.tfevents.1").write_bytes(b"training curves")
    return root


@pytest.fixture(scope="module")
def package(neuralnets_fixtures, tmp_path_factory):
    """A bioimage.io package of another model, written by `models export`."""
    root = tmp_path_factory.mktemp("source-data")
    (root / "models").mkdir()
    shutil.copy(
        neuralnets_fixtures / "unet2d_fm8_l3_batch.pytorch", root / "models" / "other.pytorch"
    )
    path = tmp_path_factory.mktemp("zoo") / "other.bioimageio.zip"
    result = invoke(root, "models", "export", "other", "--format", "bioimageio", "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


# -- export: the output place ----------------------------------------------------------------


def test_bioimageio_export_into_an_existing_folder_keeps_everything_in_it(data_folder, tmp_path):
    kept = tmp_path / "my-exports"
    (kept / "older").mkdir(parents=True)
    (kept / "notes.txt").write_text("results for the paper")
    (kept / "older" / "model-v1.onnx").write_bytes(b"an older export")
    before = file_digests(kept)
    result = invoke(
        data_folder, "models", "export", "tiny", "--format", "bioimageio", "-o", str(kept)
    )
    assert result.exit_code == 0, result.output
    after = file_digests(kept)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"tiny.bioimageio.zip"}
    with zipfile.ZipFile(kept / "tiny.bioimageio.zip") as archive:
        assert "rdf.yaml" in archive.namelist()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_new_path_becomes_a_package_folder_and_is_never_replaced(data_folder, tmp_path):
    folder = tmp_path / "tiny-package"
    result = invoke(
        data_folder, "models", "export", "tiny", "--format", "bioimageio", "-o", str(folder)
    )
    assert result.exit_code == 0, result.output
    assert (folder / "rdf.yaml").is_file() and (folder / "weights.pt").is_file()
    (folder / "my-notes.md").write_text("checked in napari")
    before = file_digests(folder)
    again = invoke(
        data_folder, "models", "export", "tiny", "--format", "bioimageio", "-o", str(folder)
    )
    # The folder now exists: the package goes inside it, next to what is there.
    assert again.exit_code == 0, again.output
    after = file_digests(folder)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {"tiny.bioimageio.zip"}


@pytest.mark.parametrize(
    ("export_format", "file_name"),
    [("onnx", "tiny.onnx"), ("torchscript", "tiny.torchscript.pt")],
)
def test_an_existing_folder_or_dot_gets_the_default_file_name(
    data_folder, tmp_path, monkeypatch, export_format, file_name
):
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(
        data_folder, "models", "export", "tiny", "--format", export_format, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert (out / file_name).stat().st_size > 10_000
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = invoke(data_folder, "models", "export", "tiny", "--format", export_format, "-o", ".")
    assert result.exit_code == 0, result.output
    assert (here / file_name).stat().st_size > 10_000
    if export_format == "torchscript":
        torch.jit.load(str(here / file_name))
    else:
        onnx.checker.check_model(onnx.load(str(here / file_name)))


def test_an_existing_file_is_replaced_only_with_overwrite(data_folder, tmp_path):
    target = tmp_path / "tiny.onnx"
    target.write_bytes(b"a file someone keeps")
    refused = invoke(data_folder, "models", "export", "tiny", "--format", "onnx", "-o", str(target))
    assert refused.exit_code == 1
    assert str(target) in refused.output and "--overwrite" in refused.output
    assert target.read_bytes() == b"a file someone keeps"
    replaced = invoke(
        data_folder,
        "models",
        "export",
        "tiny",
        "--format",
        "onnx",
        "-o",
        str(target),
        "--overwrite",
    )
    assert replaced.exit_code == 0, replaced.output
    onnx.checker.check_model(onnx.load(str(target)))


def test_help_and_output_say_how_the_model_scales_its_input(data_folder, tmp_path):
    help_text = " ".join(invoke(data_folder, "models", "export", "--help").output.split())
    assert "percentile" in help_text and "255" in help_text
    # The demo model scales between percentiles; the exported network leaves it to the caller.
    demo = invoke(
        data_folder,
        "models",
        "export",
        str(DEMO_MODEL),
        "--format",
        "onnx",
        "-o",
        str(tmp_path / "demo.onnx"),
        "--json",
    )
    assert demo.exit_code == 0, demo.output
    scaling = json.loads(demo.output)["input_scaling"]
    assert "percentile 1 maps to 0" in scaling and "percentile 99 to 1" in scaling
    assert "255" not in scaling
    graph = onnx.load(str(tmp_path / "demo.onnx"))
    assert "percentile 99 to 1" in graph.doc_string
    tiny = invoke(
        data_folder, "models", "export", "tiny", "--format", "onnx", "-o", str(tmp_path / "t.onnx")
    )
    assert tiny.exit_code == 0 and "uint8 by 255" in tiny.output
