"""Learning from strokes: what a few strokes teach, and what a fine-tune keeps of its base model.

Synthetic slices stand in for EM: bright blobs on a dark, noisy background. Strokes are drawn
the way a person paints them (short lines inside a few objects and across the background),
covering well under 1 % of the pixels; scores are measured on slices nobody painted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from biosegment.engine.checkpoint import load_model
from biosegment.engine.comparison import compare
from biosegment.engine.losses import TEACHER_OFFSET, SegmentationLoss
from biosegment.engine.teacher import classes_match
from biosegment.engine.train_settings import TrainingSettings
from biosegment.engine.training import TrainingData, train_model
from biosegment.engine.validation import predict_logits
from biosegment.volumes.base import normalise

NETWORK = {"feature_maps": 8, "levels": 3, "norm": "instance"}
CLASSES = [{"id": 0, "name": "background"}, {"id": 1, "name": "blob"}]


# Tiny networks on one thread (the shared fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(depth: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright smooth blobs (class 1) on a dark noisy background (class 0)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(depth, size, size)), sigma=(0, 6, 6))
    labels = (field > 0.02).astype(np.uint8)
    image = np.clip(70 + 90 * labels + rng.normal(0, 25, labels.shape), 0, 255)
    return image.astype(np.uint8), labels


def _strokes(truth: np.ndarray, rng: np.random.Generator, per_class: int = 3) -> np.ndarray:
    """Short 3-pixel-wide lines deep inside a few regions of each class; 255 elsewhere."""
    painted = np.full(truth.shape, 255, np.uint8)
    for class_id in (0, 1):
        inside = ndimage.binary_erosion(truth == class_id, iterations=5)
        ys, xs = np.nonzero(inside)
        for point in rng.choice(ys.size, size=min(per_class, ys.size), replace=False):
            y, x = ys[point], xs[point]
            for dx in range(-6, 7):
                for dy in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < truth.shape[0] and 0 <= xx < truth.shape[1] and inside[yy, xx]:
                        painted[yy, xx] = class_id
    return painted


def _iou(model, image: np.ndarray, truth: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        predicted = np.stack(
            [
                predict_logits(model, normalise(plane), device=torch.device("cpu"))
                .argmax(0)
                .numpy()
                for plane in image
            ]
        )
    hit, wanted = predicted == 1, truth == 1
    return float((hit & wanted).sum() / max((hit | wanted).sum(), 1))


def test_strokes_on_under_one_percent_of_the_pixels_segment_unpainted_slices(tmp_path):
    image, truth = _blobs(3)
    rng = np.random.default_rng(1)
    painted = {z: _strokes(truth[z], rng) for z in range(3)}
    share = np.mean([(p != 255).mean() for p in painted.values()])
    assert share < 0.01
    result = train_model(
        TrainingData([(image, painted)], classes=CLASSES),
        tmp_path / "strokes",
        TrainingSettings(
            **NETWORK,
            max_steps=120,
            crop_size=64,
            batch_size=4,
            validation_fraction=0,
            device="cpu",
        ),
    )
    model, _ = load_model(result.folder)
    test_image, test_truth = _blobs(2, seed=7)
    assert _iou(model, test_image, test_truth) >= 0.8


def test_a_fine_tune_on_strokes_that_agree_with_its_base_keeps_its_score(tmp_path):
    image, truth = _blobs(4)
    base = train_model(
        TrainingData([(image, truth)], classes=CLASSES),
        tmp_path / "base",
        TrainingSettings(
            **NETWORK,
            max_steps=150,
            crop_size=64,
            batch_size=4,
            validation_fraction=0,
            device="cpu",
        ),
    )
    test_image, test_truth = _blobs(2, seed=7)
    base_model, _ = load_model(base.folder)
    before = _iou(base_model, test_image, test_truth)
    assert before >= 0.8
    rng = np.random.default_rng(3)
    # Strokes of the object class only: without the base model's view of the rest of the
    # slice, a fine-tune would learn that everything is a blob.
    painted = {z: np.where(_strokes(truth[z], rng) == 1, 1, 255).astype(np.uint8) for z in (0, 1)}
    tuned = train_model(
        TrainingData([(image, painted)], classes=CLASSES),
        tmp_path / "tuned",
        TrainingSettings(
            max_steps=60,
            crop_size=64,
            batch_size=4,
            learning_rate=2e-3,
            validation_fraction=0,
            device="cpu",
        ),
        base_model=base.folder,
    )
    assert tuned.card.training["params"]["keep_base"] > 0
    after = _iou(load_model(tuned.folder)[0], test_image, test_truth)
    assert after >= before - 0.03


def test_the_base_model_is_kept_only_for_its_own_classes():
    membrane = [{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}]
    assert classes_match(membrane, [{"id": 0, "name": "Background"}, {"id": 1, "name": "membrane"}])
    assert not classes_match(
        membrane, [{"id": 0, "name": "background"}, {"id": 1, "name": "mitochondrion"}]
    )
    assert not classes_match(membrane, [*membrane, {"id": 2, "name": "vesicle"}])


def test_the_base_term_learns_from_coded_pixels_and_strokes_outweigh_them():
    logits = torch.zeros(1, 2, 4, 4, requires_grad=True)
    labels = torch.full((1, 4, 4), 255, dtype=torch.int64)
    labels[0, 0, 0] = 1  # one painted pixel
    labels[0, 1:, :] = TEACHER_OFFSET + 0  # the base model said background here
    loss = SegmentationLoss(num_classes=2, keep_base=0.5)(logits, labels)
    loss.backward()
    gradient = logits.grad[0]
    assert gradient[1, 0, 0] < 0  # the painted pixel pulls towards class 1
    assert gradient[0, 2, 2] < 0  # a coded pixel pulls towards the base model's class 0
    assert abs(gradient[1, 0, 0]) > abs(gradient[0, 2, 2])
    assert gradient[:, 0, 1].abs().sum() == 0  # unpainted, uncoded: no pull
    plain = SegmentationLoss(num_classes=2)(logits, labels)
    assert float(plain) == pytest.approx(float(np.log(2)), rel=1e-5)  # coded pixels ignored


def test_the_comparison_says_better_worse_or_same_and_by_how_much():
    base = {"mean_dice": 0.80, "val_loss": 0.3}
    worse = compare(base, {"mean_dice": 0.77}, base_name="demo", where="on held-out strokes")
    assert worse["verdict"] == "worse" and worse["delta"] == pytest.approx(-0.03)
    assert worse["text"].startswith("worse than demo by 0.030")
    better = compare(base, {"mean_dice": 0.85}, base_name="demo", where="x")
    assert better["verdict"] == "better"
    assert compare(base, {"mean_dice": 0.802}, base_name="demo", where="x")["verdict"] == "same"
    loss_only = compare({"val_loss": 0.3}, {"val_loss": 0.2}, base_name="demo", where="x")
    assert loss_only["metric"] == "val_loss" and loss_only["verdict"] == "better"
    assert compare({}, {"mean_dice": 0.5}, base_name="demo", where="x") is None
