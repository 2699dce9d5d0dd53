"""bioimage.io model packages: written ones validate with the spec library, and packages whose
weights are a U-Net (ours or the old stack's) import as BioSegment models."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from bioimageio.spec import ValidationContext, load_description

from biosegment.engine import load_model
from biosegment.engine.bioimageio import export_bioimageio, import_bioimageio, read_package_rdf
from biosegment.errors import InputError

DEMO_RAW = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "isbi2012" / "raw.tif"


def validate(source: Path):
    # perform_io_checks: every file named must be there and match its sha256; nothing is
    # downloaded (the package holds all its files).
    with ValidationContext(perform_io_checks=True):
        return load_description(source)


@pytest.fixture(scope="module")
def package(neuralnets_fixtures, tmp_path_factory):
    model, card = load_model(neuralnets_fixtures / "isbi_unet2d_fm16_l4_instance.pytorch")
    card.classes = [
        {"id": 0, "name": "cell", "color": "#000000"},
        {"id": 1, "name": "membrane", "color": "#ffd000"},
    ]
    test_slice = tifffile.imread(DEMO_RAW)[2]
    path = tmp_path_factory.mktemp("zoo") / "isbi.bioimageio.zip"
    export_bioimageio(
        model,
        card,
        path,
        test_input=test_slice,
        authors=[{"name": "Ada Lovelace"}],
        license_id="CC-BY-4.0",
    )
    return path, model


def test_package_validates_with_the_spec_library(package):
    path, _ = package
    description = validate(path)
    summary = description.validation_summary
    assert type(description).__name__ == "ModelDescr", summary.format()
    assert summary.status in ("valid-format", "passed"), summary.format()
    assert {
        w
        for w in ("pytorch_state_dict", "torchscript", "onnx")
        if getattr(description.weights, w) is not None
    } == {"pytorch_state_dict", "torchscript", "onnx"}
    assert [c for c in description.outputs[0].axes[1].channel_names] == ["cell", "membrane"]
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {
        "rdf.yaml",
        "weights.pt",
        "unet.py",
        "weights.torchscript.pt",
        "weights.onnx",
        "test_input.npy",
        "test_output.npy",
        "cover.png",
        "README.md",
    } <= names


def test_test_output_is_what_every_weight_format_computes(package, tmp_path):
    path, model = package
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path)
    test_input = np.load(tmp_path / "test_input.npy")
    test_output = np.load(tmp_path / "test_output.npy")
    assert test_input.dtype == np.uint8 and test_input.shape == (1, 1, 256, 256)
    scaled = torch.from_numpy(test_input.astype(np.float32) / 255)
    with torch.no_grad():
        np.testing.assert_allclose(model(scaled).numpy(), test_output, atol=1e-4)
        scripted = torch.jit.load(str(tmp_path / "weights.torchscript.pt"))
        np.testing.assert_allclose(scripted(scaled).numpy(), test_output, atol=1e-4)
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(tmp_path / "weights.onnx"), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(
        session.run(None, {"raw": scaled.numpy()})[0], test_output, atol=2e-4
    )


def test_a_damaged_package_fails_validation_and_import(package, tmp_path):
    path, _ = package
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "weights.pt":
                data = data[:-64] + bytes(64)
            target.writestr(item, data)
    assert validate(damaged).validation_summary.status == "failed"
    with pytest.raises(
        InputError,
        match=r"damaged\.zip: weights\.pytorch_state_dict: "
        r"weights\.pt does not match its sha256",
    ):
        import_bioimageio(damaged, tmp_path / "models")


def test_our_package_imports_back_as_the_same_model(package, tmp_path):
    path, model = package
    checkpoint = import_bioimageio(path, tmp_path / "models", name="isbi from zoo")
    assert checkpoint == tmp_path / "models" / "isbi_from_zoo" / "model.pytorch"
    imported, card = load_model(checkpoint)
    assert imported.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(imported.state_dict()[key], value), key
    assert [c["name"] for c in card.classes] == ["cell", "membrane"]
    assert card.training["imported_from"] == str(path)


def write_foreign_package(folder: Path, fixtures: Path, *, perturb: float = 0.0) -> Path:
    """A package as another tool would write it around an old-stack checkpoint: format 0.5,
    float input already scaled, and the outputs the real neuralnets library computed."""
    folder.mkdir(parents=True)
    shutil.copy(fixtures / "unet2d_fm8_l3_batch.pytorch", folder / "weights.pt")
    io = np.load(fixtures / "unet2d_fm8_l3_batch_io.npz")
    np.save(folder / "in.npy", io["input"])
    np.save(folder / "out.npy", io["output"] + np.float32(perturb))
    (folder / "doc.md").write_text("# Old-stack U-Net\n")

    def sha(name):
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    space = [{"type": "space", "id": a, "size": 64} for a in ("y", "x")]
    rdf = {
        "format_version": "0.5.4",
        "type": "model",
        "name": "old stack mito er",
        "description": "three-class U-Net",
        "authors": [{"name": "Someone Else"}],
        "cite": [{"text": "U-Net", "doi": "10.1007/978-3-319-24574-4_28"}],
        "license": "MIT",
        "documentation": "doc.md",
        "inputs": [
            {
                "id": "input0",
                "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["em"]}, *space],
                "test_tensor": {"source": "in.npy", "sha256": sha("in.npy")},
                "data": {"type": "float32"},
            }
        ],
        "outputs": [
            {
                "id": "output0",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": ["background", "mitochondria", "er"]},
                    *space,
                ],
                "test_tensor": {"source": "out.npy", "sha256": sha("out.npy")},
                "data": {"type": "float32"},
            }
        ],
        "weights": {
            "pytorch_state_dict": {
                "source": "weights.pt",
                "sha256": sha("weights.pt"),
                "pytorch_version": "2.13",
                "architecture": {
                    "callable": "UNet2D",
                    "import_from": "neuralnets.networks.unet",
                    "kwargs": {"feature_maps": 8, "levels": 3},
                },
            }
        },
    }
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
    return folder


def test_old_stack_unet_package_imports_and_reproduces_its_outputs(neuralnets_fixtures, tmp_path):
    folder = write_foreign_package(tmp_path / "foreign", neuralnets_fixtures)
    assert read_package_rdf(folder)["name"] == "old stack mito er"
    checkpoint = import_bioimageio(folder, tmp_path / "models")
    model, card = load_model(checkpoint)
    assert model.config["norm"] == "batch" and model.config["num_classes"] == 3
    assert [c["name"] for c in card.classes] == ["background", "mitochondria", "er"]
    io = np.load(neuralnets_fixtures / "unet2d_fm8_l3_batch_io.npz")
    with torch.no_grad():
        np.testing.assert_allclose(
            model(torch.from_numpy(io["input"])).numpy(), io["output"], atol=1e-4
        )


def test_packages_this_engine_cannot_run_are_refused_with_the_reason(neuralnets_fixtures, tmp_path):
    wrong = write_foreign_package(tmp_path / "wrong", neuralnets_fixtures, perturb=0.5)
    with pytest.raises(
        InputError,
        match=r"wrong: outputs\[0\]\.test_tensor: the weights do "
        "not reproduce the package's test output",
    ):
        import_bioimageio(wrong, tmp_path / "models")
    script_only = write_foreign_package(tmp_path / "script", neuralnets_fixtures)
    rdf = yaml.safe_load((script_only / "rdf.yaml").read_text())
    rdf["weights"] = {"torchscript": {"source": "weights.pt"}}
    (script_only / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(
        InputError,
        match=r"script: weights: the package has no "
        "pytorch_state_dict weights",
    ):
        import_bioimageio(script_only, tmp_path / "models")
    not_unet = write_foreign_package(tmp_path / "other", neuralnets_fixtures)
    torch.save({"conv.weight": torch.zeros(4, 1, 3, 3)}, not_unet / "weights.pt")
    rdf = yaml.safe_load((not_unet / "rdf.yaml").read_text())
    rdf["weights"]["pytorch_state_dict"].pop("sha256")
    (not_unet / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(InputError, match=r"other: weights\.pytorch_state_dict.*not a U-Net"):
        import_bioimageio(not_unet, tmp_path / "models")
    assert not (tmp_path / "models").exists()


# -- the bioimage.io community's own checker ---------------------------------------------------

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "model"


@pytest.fixture(scope="module")
def shipped_package(tmp_path_factory):
    model, card = load_model(SHIPPED_MODEL)
    path = tmp_path_factory.mktemp("shipped") / "shipped.bioimageio.zip"
    export_bioimageio(
        model,
        card,
        path,
        test_input=tifffile.imread(DEMO_RAW)[2],
        authors=[{"name": "BioSegment"}],
        license_id="CC-BY-4.0",
    )
    return path


CHECKER_PYTHON = Path(__file__).parents[1] / ".venv-bioimageio" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.parametrize("weight_format", ["pytorch_state_dict", "torchscript", "onnx"])
def test_bioimageio_core_test_model_passes_every_weight_format_of_the_shipped_model(
    shipped_package, weight_format
):
    if not CHECKER_PYTHON.exists():
        pytest.fail("the bioimage.io checker environment is missing: make checker builds it")
    run = subprocess.run(
        [
            str(CHECKER_PYTHON),
            str(Path(__file__).with_name("bioimageio_checker.py")),
            str(shipped_package),
            weight_format,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    summary = json.loads(run.stdout)
    assert summary["status"] == "passed", summary["report"]
    # It ran inference (not only the format check), at the test size and at other sizes.
    inference = [d for d in summary["details"] if "inference" in d["name"].lower()]
    assert inference and all(d["status"] == "passed" for d in inference)


def test_the_input_says_raw_uint8_and_the_preprocessing_ends_in_what_the_network_takes(
    shipped_package,
):
    rdf = read_package_rdf(shipped_package)
    raw = rdf["inputs"][0]
    assert raw["data"]["type"] == "uint8"
    steps = raw["preprocessing"]
    assert steps[-1] == {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}
    _, card = load_model(SHIPPED_MODEL)
    if card.normalisation["method"] == "percentile":
        scaling = next(s for s in steps if s["id"] == "scale_range")
        assert "reference_tensor" not in scaling["kwargs"]  # each image's own percentiles
        assert scaling["kwargs"]["min_percentile"] == card.normalisation["low_percentile"]
    # The smallest declared size runs through instance norm (more than one value at the bottom).
    assert raw["axes"][2]["size"]["min"] == 2 * 2 ** card.architecture["levels"]


def test_a_percentile_package_imports_back_with_its_scaling(shipped_package, tmp_path):
    path = import_bioimageio(shipped_package, tmp_path / "models", name="back")
    _, card = load_model(path.parent)
    _, shipped = load_model(SHIPPED_MODEL)
    assert card.normalisation["method"] == shipped.normalisation["method"]
