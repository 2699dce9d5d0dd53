"""The demo model that ships with BioSegment loads and finds ISBI membranes it never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biosegment.engine.checkpoint import load_model, read_state_dict
from biosegment.engine.inference import segment_volume
from biosegment.engine.metrics import segmentation_scores
from biosegment.volumes import open_volume, write_volume

PACKAGE = Path(__file__).resolve().parents[1] / "biosegment"
DEMO_MODEL = PACKAGE / "demo" / "model"
DEMO_DATA = PACKAGE / "demo" / "isbi2012"  # ISBI train slices 25-29, unseen in training


@pytest.fixture(autouse=True)
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


def test_demo_model_is_small_and_describes_itself():
    checkpoint = DEMO_MODEL / "model.pytorch"
    assert checkpoint.stat().st_size < 3_000_000
    model, card = load_model(DEMO_MODEL)
    assert card.classes == [{"id": 0, "name": "background", "color": "#000000"},
                            {"id": 1, "name": "membrane", "color": "#ff3030"}]
    assert model.config["dims"] == 2 and model.num_classes == 2
    provenance = card.training["provenance"]
    assert "ISBI 2012" in provenance["data"]["dataset"]
    assert any("Arganda-Carreras" in c for c in provenance["data"]["citation"])
    assert provenance["command"].startswith("python benchmarks/train_demo_model.py")
    scores = card.training["evaluation"]["scores"]
    assert scores["pixel_error"] < 0.08 and scores["membrane_dice"] > 0.78
    # The neuralnets key layout: a bare state_dict the old stack could load.
    assert "encoder.features.convblock1.conv1.unit.0.weight" in read_state_dict(checkpoint)


def test_demo_model_segments_isbi_slice_25(tmp_path):
    model, _ = load_model(DEMO_MODEL)
    with open_volume(DEMO_DATA / "raw.tif") as raw, open_volume(DEMO_DATA / "labels.tif") as gt:
        slice_25, truth = raw.read_slice(0), gt.read_slice(0)
    write_volume(tmp_path / "slice25.tif", slice_25)
    with open_volume(tmp_path / "slice25.tif") as volume:
        labels = segment_volume(volume, model, device="cpu")
    assert labels.shape == (1, 512, 512) and labels.dtype == np.uint8
    scores = segmentation_scores(truth[np.newaxis], labels, num_classes=2,
                                 class_names=["background", "membrane"])
    # Measured when shipped: Dice 0.82, pixel error 0.069; the margin covers fp32 vs bf16.
    assert scores["dice"]["membrane"] > 0.78
    assert scores["pixel_error"] < 0.085
