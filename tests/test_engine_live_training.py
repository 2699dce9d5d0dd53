"""Live training: strokes that join a running run, a graceful stop, snapshots and step curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from biosegment.engine.checkpoint import load_model
from biosegment.engine.live_snapshot import (
    LiveRecorder,
    read_live_status,
    read_steps,
    snapshot_version,
    validation_figure,
)
from biosegment.engine.progress import TrainingObservers
from biosegment.engine.train_settings import TrainingSettings
from biosegment.engine.training import TrainingData, train_model

TINY = {"feature_maps": 4, "levels": 2, "norm": "instance"}
FAST = {**TINY, "crop_size": 32, "batch_size": 4, "device": "cpu"}
CLASSES = [
    {"id": 0, "name": "background", "color": "#000000"},
    {"id": 1, "name": "blob", "color": "#ff0000"},
]


# Tiny networks on one thread (the shared fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(size=64, seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(1, size, size)), sigma=(0, 4, 4))
    truth = (field > 0).astype(np.uint8)
    image = np.clip(60 + 120 * truth + rng.normal(0, 15, truth.shape), 0, 255)
    return image.astype(np.uint8), truth


def _predict(folder, image) -> np.ndarray:
    model, _ = load_model(folder)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(image[:, None].astype(np.float32) / 255.0))
    return logits.argmax(1).numpy()


def fast(**options) -> TrainingSettings:
    """A tiny network's settings, with ``options`` over them."""
    return TrainingSettings(**{**FAST, **options})


def test_strokes_added_mid_run_are_trained_on(tmp_path):
    """Background strokes alone teach "all background"; blob strokes given at step 10 are
    picked up without a restart, and the network then finds the blobs."""
    image, truth = _blobs()
    only_background = np.where(truth == 0, 0, 255).astype(np.uint8)
    with_blobs = truth.copy()
    seen: list[int] = []

    def on_step(run):
        seen.append(run.pool.labelled_pixels)
        if run.step == 10:
            run.replace_training([(image, with_blobs)])

    result = train_model(
        TrainingData([(image, only_background)], classes=CLASSES),
        tmp_path / "m",
        fast(max_steps=150, steps_per_epoch=50, learning_rate=1e-2, validation_fraction=0.0),
        observers=TrainingObservers(on_step=on_step),
    )
    assert result.steps == 150
    assert seen[0] == int((truth == 0).sum()) and seen[-1] == truth.size
    predicted = _predict(result.folder, image)
    found = (predicted[truth == 1] == 1).mean()
    assert found > 0.8, found


def test_new_strokes_never_enter_the_held_out_pixels(tmp_path):
    image, truth = _blobs()
    taken = {}

    def on_step(run):
        if run.step == 2:
            held = run.validation_stacks[0].labels != 255
            run.replace_training([(image, truth)])
            trained = run.pool.stacks[0].labels != 255
            taken["overlap"] = int((held & trained).sum())
            taken["held"] = int(held.sum())
            taken["trained"] = int(trained.sum())

    train_model(
        TrainingData([(image, np.where(truth == 0, 0, 255).astype(np.uint8))], classes=CLASSES),
        tmp_path / "m",
        fast(max_steps=3, validation_fraction=0.25),
        observers=TrainingObservers(on_step=on_step),
    )
    assert taken["held"] > 0 and taken["overlap"] == 0
    assert taken["trained"] < truth.size - taken["held"]  # the guard band stays out too


def test_should_stop_ends_the_run_keeping_the_best_weights(tmp_path):
    image, truth = _blobs()
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= 7  # polled after steps 1..7

    result = train_model(
        TrainingData([(image, truth)]),
        tmp_path / "m",
        fast(epochs=100, steps_per_epoch=5),
        observers=TrainingObservers(should_stop=should_stop),
    )
    assert result.stopped_by == "stopped" and result.steps == 7
    # the epoch in progress was closed: 5 + 2 steps make two epochs, both validated
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all("val_loss" in r for r in result.history)
    assert result.checkpoint.is_file()


def test_recorder_writes_snapshots_status_and_step_curve(tmp_path):
    image, truth = _blobs()
    live = tmp_path / "live"
    recorder = LiveRecorder(live, steps_file=tmp_path / "steps.jsonl", interval_s=0.0)
    versions = set()

    def on_step(run):
        recorder(run)
        versions.add(snapshot_version(live))

    train_model(
        TrainingData([(image, truth)]),
        tmp_path / "m",
        fast(max_steps=6, steps_per_epoch=3),
        observers=TrainingObservers(on_step=on_step),
    )
    recorder.flush_steps()
    status = read_live_status(live)
    assert status["step"] == 6 and status["snapshots"] == 6
    assert status["weights"] == snapshot_version(live)
    assert status["validation"]["metric"] == "mean_dice"
    assert "held out" in status["validation"]["label"]
    model, card = load_model(live)
    assert model.config["feature_maps"] == 4 and card.classes
    steps = read_steps(tmp_path / "steps.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(s["loss"], float) for s in steps)
    assert [s["step"] for s in read_steps(tmp_path / "steps.jsonl", after=4)] == [5, 6]
    assert len(versions) > 1  # each snapshot replaced the weights


def test_steps_repeated_after_a_resume_replace_the_earlier_records(tmp_path):
    path = tmp_path / "steps.jsonl"
    lines = [{"step": s, "loss": 1.0} for s in (1, 2, 3, 4)] + [
        {"step": s, "loss": 0.5} for s in (3, 4, 5)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"step": 6, "lo')
    steps = read_steps(path)
    assert [(s["step"], s["loss"]) for s in steps] == [
        (1, 1.0),
        (2, 1.0),
        (3, 0.5),
        (4, 0.5),
        (5, 0.5),
    ]


def test_the_validation_figure_says_what_it_scored():
    history = [
        {"epoch": 1, "step": 50, "val_loss": 0.5, "mean_dice": 0.7},
        {"epoch": 2, "step": 100, "val_loss": 0.4},
    ]
    figure = validation_figure(history, {"method": "strokes", "fraction": 0.15})
    # the latest record with a figure; Dice before a loss
    assert figure == {
        "metric": "val_loss",
        "value": 0.4,
        "label": "validation loss on 15 % of your strokes, held out",
        "epoch": 2,
        "step": 100,
    }
    figure = validation_figure(history[:1], {"method": "slices", "fraction": 0.2})
    assert figure["label"] == "mean Dice on 20 % of the labelled slices, held out"
    assert validation_figure([{"epoch": 1, "train_loss": 0.3}], {"method": "none"}) is None
