"""Strokes spread by a pixel classifier: labels for the pixels nobody painted.

Synthetic slices stand in for EM: textured blobs (class 1) on a background of another
texture at the same mean brightness, so a pixel's own value says little and its
neighbourhood (the filters of engine.pixel_features) says which class it is. Strokes cover
well under 1 % of the pixels, painted the way a person paints them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from biosegment.engine.checkpoint import load_model
from biosegment.engine.losses import TEACHER_OFFSET
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.pixel_features import (
    TILE,
    feature_count,
    feature_tiles,
    slice_features,
    tile_bytes,
)
from biosegment.engine.progress import TrainingObservers
from biosegment.engine.samples import TrainingPair, collect_stacks
from biosegment.engine.spread import CORRECTION_RADIUS, spread_plane, spread_strokes
from biosegment.engine.stroke_classifier import fit_stroke_classifier
from biosegment.engine.train_memory import WORKING_BYTES
from biosegment.engine.train_settings import TrainingSettings
from biosegment.engine.training import TrainingData, train_model
from biosegment.engine.validation import predict_logits
from biosegment.volumes.base import normalise

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = [{"id": 0, "name": "background"}, {"id": 1, "name": "blob"}]


def _textured(depth: int, size: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of fine grain on a smooth background, both of mean brightness 128."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(depth, size, size)), sigma=(0, 8, 8))
    labels = (field > 0.01).astype(np.uint8)
    grain = rng.normal(0, 40, labels.shape)
    smooth = ndimage.gaussian_filter(rng.normal(0, 40, labels.shape), sigma=(0, 3, 3)) * 3
    image = np.clip(128 + np.where(labels == 1, grain, smooth), 0, 255)
    return image.astype(np.uint8), labels


def _strokes(truth: np.ndarray, rng: np.random.Generator, per_class: int = 3) -> np.ndarray:
    """Short 3-pixel-wide lines deep inside a few regions of each class; 255 elsewhere."""
    painted = np.full(truth.shape, IGNORE_LABEL, np.uint8)
    for class_id in (0, 1):
        inside = ndimage.binary_erosion(truth == class_id, iterations=6)
        ys, xs = np.nonzero(inside)
        for point in rng.choice(ys.size, size=min(per_class, ys.size), replace=False):
            y, x = ys[point], xs[point]
            rows = slice(max(y - 1, 0), y + 2)
            columns = slice(max(x - 6, 0), x + 7)
            painted[rows, columns] = np.where(inside[rows, columns], class_id, IGNORE_LABEL)
    return painted


def _iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    hit, wanted = predicted == 1, truth == 1
    return float((hit & wanted).sum() / max((hit | wanted).sum(), 1))


def _painted(truth: np.ndarray, seed: int = 1) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    painted = {z: _strokes(truth[z], rng) for z in range(truth.shape[0])}
    assert np.mean([(p != IGNORE_LABEL).mean() for p in painted.values()]) < 0.01
    return painted


def test_features_of_a_slice_cut_into_tiles_do_not_depend_on_where_the_tiles_fall():
    rng = np.random.default_rng(0)
    plane = ndimage.gaussian_filter(rng.random((TILE + 150, TILE + 90)), 2).astype(np.float32)
    tiles = list(feature_tiles(plane))
    assert len(tiles) == 4  # the slice is wider and taller than a tile
    whole = slice_features(plane)
    assert whole.shape == (feature_count(), TILE + 150, TILE + 90)
    assert np.isfinite(whole.numpy()).all()
    # the same pixels cut at another place (by a multiple of the coarsest shrinking): its
    # tiles' seams fall elsewhere, its features away from its own edges are the same
    cut = slice_features(plane[64:, 128:])
    assert np.allclose(
        cut[:, 100:500, 100:400].numpy(), whole[:, 164:564, 228:528].numpy(), atol=1e-5
    )


def test_a_tile_of_features_costs_less_than_a_training_step_holds():
    # spreading runs before the first step, so the step's memory estimate bounds it
    assert tile_bytes() < WORKING_BYTES


def test_the_classifier_spreads_strokes_on_under_one_percent_to_most_unpainted_pixels():
    image, truth = _textured(3)
    painted = _painted(truth)
    stacks = collect_stacks([TrainingPair(image, painted)])
    assert spread_strokes(stacks, num_classes=2, seed=0)
    for stack in stacks:
        z = stack.z_start
        taught = stack.taught[0]
        assert taught is not None
        # the strokes are kept as painted
        strokes = painted[z] != IGNORE_LABEL
        assert (taught[strokes] == painted[z][strokes]).all()
        spread = (taught >= TEACHER_OFFSET) & (taught != IGNORE_LABEL)
        assert not (spread & strokes).any()
        # most unpainted pixels get a class, and those classes are right
        assert spread.mean() >= 0.6
        classes = taught[spread] - TEACHER_OFFSET
        assert _iou(classes, truth[z][spread]) >= 0.85
    # an unpainted slice of the same kind, classified by a classifier fitted on the strokes
    test_image, test_truth = _textured(1, seed=5)
    classifier = fit_stroke_classifier(
        [normalise(image[z]) for z in painted], list(painted.values()), num_classes=2
    )
    assert classifier is not None
    chosen, _ = classifier.sure_classes(normalise(test_image[0]), 0.5)
    assert _iou(chosen, test_truth[0]) >= 0.8


def test_nothing_is_spread_near_a_stroke_the_classifier_gets_wrong():
    painted = np.full((64, 64), IGNORE_LABEL, np.uint8)
    painted[30:33, 20:40] = 0  # a correction: the person says background
    painted[5, 5:10] = 1  # a stroke the classifier agrees with
    chosen = np.ones((64, 64), np.uint8)  # the classifier says "blob" everywhere...
    sure = np.ones((64, 64), bool)
    sure[60:, :] = False  # ...and is unsure of the last rows
    taught = spread_plane(painted, chosen, sure)
    assert (taught[30:33, 20:40] == 0).all() and (taught[5, 5:10] == 1).all()  # strokes kept
    near = np.zeros((64, 64), bool)
    near[30 - CORRECTION_RADIUS : 33 + CORRECTION_RADIUS, 20:40] = True
    assert (taught[near & (painted == IGNORE_LABEL)] == IGNORE_LABEL).all()
    assert (taught[60:] == IGNORE_LABEL).all()  # unsure: no class
    far = np.zeros((64, 64), bool)
    far[:15, 45:] = True
    assert (taught[far & (painted == IGNORE_LABEL)] == TEACHER_OFFSET + 1).all()


def test_one_painted_class_spreads_nothing():
    image, truth = _textured(1)
    painted = np.where(_painted(truth)[0] == 1, 1, IGNORE_LABEL).astype(np.uint8)
    stacks = collect_stacks([TrainingPair(image, {0: painted})])
    assert not spread_strokes(stacks, num_classes=2, seed=0)
    assert stacks[0].taught is None


def test_a_network_trained_on_spread_strokes_segments_unpainted_slices(tmp_path):
    image, truth = _textured(3)
    painted = _painted(truth)
    result = train_model(
        TrainingData([(image, painted)], classes=CLASSES),
        tmp_path / "spread",
        TrainingSettings(
            feature_maps=8,
            levels=3,
            max_steps=80,
            crop_size=64,
            batch_size=4,
            validation_fraction=0,
            device="cpu",
            spread=1.0,
        ),
    )
    assert result.card.training["params"]["spread"] == 1.0
    model, _ = load_model(result.folder)
    test_image, test_truth = _textured(2, seed=7)
    model.eval()
    predicted = np.stack(
        [
            predict_logits(model, normalise(plane), device=torch.device("cpu")).argmax(0).numpy()
            for plane in test_image
        ]
    )
    assert _iou(predicted, test_truth) >= 0.7


def test_strokes_that_join_a_running_job_are_spread_again(tmp_path):
    image, truth = _textured(2)
    first = _painted(truth)
    # round 0: strokes on slice 0 only; then slice 1 is painted while the job runs
    seen: dict[str, object] = {}

    def on_step(run):
        if run.step == 2:
            seen["before"] = [stack.z_start for stack in run.pool.stacks]
            run.replace_training([(image, first)])
            seen["after"] = {
                stack.z_start: stack.taught is not None
                and bool(((stack.taught >= TEACHER_OFFSET) & (stack.taught != 255)).any())
                for stack in run.pool.stacks
            }

    train_model(
        TrainingData([(image, {0: first[0]})], classes=CLASSES),
        tmp_path / "joined",
        TrainingSettings(
            feature_maps=4,
            levels=2,
            max_steps=3,
            crop_size=32,
            batch_size=2,
            validation_fraction=0,
            device="cpu",
            spread=1.0,
        ),
        observers=TrainingObservers(on_step=on_step),
    )
    assert seen["before"] == [0]
    assert seen["after"] == {0: True, 1: True}  # the new slice's strokes are spread too
