"""TorchScript and ONNX exports compute what the engine computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from biosegment.engine import load_model, segment_volume
from biosegment.engine.export import export_onnx, export_torchscript
from biosegment.volumes import open_volume

DEMO_RAW = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "isbi2012" / "raw.tif"


@pytest.fixture(scope="module")
def isbi_model(neuralnets_fixtures):
    return load_model(neuralnets_fixtures / "isbi_unet2d_fm16_l4_instance.pytorch")


@pytest.fixture(scope="module")
def isbi_onnx(isbi_model, tmp_path_factory):
    model, card = isbi_model
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "isbi.onnx", card=card)


def run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"raw": batch})[0]


def test_onnx_labels_match_the_engine_on_the_demo_slices(isbi_model, isbi_onnx):
    model, _ = isbi_model
    with open_volume(DEMO_RAW) as reader:
        engine_labels = segment_volume(reader, model)  # default settings, as jobs run it
        raw = reader.read_block(0, reader.shape[0])
    onnx_labels = np.concatenate(
        [
            run_onnx(isbi_onnx, (plane.astype(np.float32) / 255)[None, None]).argmax(axis=1)
            for plane in raw
        ]
    )
    differing = float(np.mean(onnx_labels != engine_labels))
    assert onnx_labels.shape == engine_labels.shape == (5, 512, 512)
    assert differing <= 0.001, f"{differing:.4%} of pixels differ"


def test_onnx_takes_any_batch_and_size_and_carries_the_card(isbi_model, isbi_onnx):
    model, card = isbi_model
    batch = np.random.default_rng(0).random((2, 1, 64, 96), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(run_onnx(isbi_onnx, batch), expected, atol=2e-4)
    metadata = {p.key: p.value for p in onnx.load(str(isbi_onnx)).metadata_props}
    assert json.loads(metadata["classes"]) == card.classes
    assert json.loads(metadata["architecture"])["feature_maps"] == 16


@pytest.mark.parametrize("name", ["unet2d_fm8_l3_batch", "unet3d_fm4_l2_instance"])
def test_both_formats_reproduce_the_neuralnets_outputs(neuralnets_fixtures, tmp_path, name):
    model, card = load_model(neuralnets_fixtures / f"{name}.pytorch")
    io = np.load(neuralnets_fixtures / f"{name}_io.npz")
    onnx_path = export_onnx(model, tmp_path / f"{name}.onnx", card=card)
    script_path = export_torchscript(model, tmp_path / f"{name}.torchscript.pt", card=card)
    np.testing.assert_allclose(run_onnx(onnx_path, io["input"]), io["output"], atol=2e-4)
    extra = {"model.json": ""}
    scripted = torch.jit.load(str(script_path), _extra_files=extra)
    with torch.no_grad():
        np.testing.assert_allclose(
            scripted(torch.from_numpy(io["input"])).numpy(), io["output"], atol=2e-4
        )
    assert json.loads(extra["model.json"])["architecture"] == model.config
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.onnx", f"{name}.torchscript.pt"]
