"""Training: model folders, fine-tuning from real base weights, repeatability, resume, cancel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from biosegment.engine.checkpoint import load_model, save_model
from biosegment.engine.losses import SegmentationLoss
from biosegment.engine.model_card import ModelCard
from biosegment.engine.progress import TrainingObservers
from biosegment.engine.samples import TrainingPair
from biosegment.engine.train_settings import TrainingSettings
from biosegment.engine.train_state import STATE_NAME
from biosegment.engine.training import TrainingData, train_model
from biosegment.engine.unet import UNet
from biosegment.errors import CancelledError, InputError

TINY = {"feature_maps": 4, "levels": 2, "norm": "instance"}
FAST = {**TINY, "crop_size": 32, "batch_size": 2, "device": "cpu"}


def fast(**options) -> TrainingSettings:
    """A tiny network's settings, with ``options`` over them."""
    return TrainingSettings(**{**FAST, **options})


# Tiny networks on one thread (the shared fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(depth=6, size=48, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Bright smooth blobs (class 1) on a dark noisy background (class 0)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(depth, size, size)), sigma=(0, 4, 4))
    labels = (field > 0).astype(np.uint8)
    image = np.clip(60 + 120 * labels + rng.normal(0, 20, labels.shape), 0, 255)
    return image.astype(np.uint8), labels


def _weights(folder) -> dict:
    model, _ = load_model(folder)
    return model.state_dict()


def _same_weights(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_training_writes_a_complete_model_folder(tmp_path):
    image, labels = _blobs()
    folder = tmp_path / "models" / "blobs"
    result = train_model(
        TrainingData([(image, labels)], name="blob finder", boundary_class=1),
        folder,
        fast(epochs=2, steps_per_epoch=3, validation_fraction=0.2),
    )
    assert result.stopped_by == "epochs" and result.steps == 6
    assert (folder / "model.pytorch").is_file() and (folder / "model.json").is_file()
    assert (folder / "last" / "model.pytorch").is_file()
    assert list((folder / "logs").glob("events.out.tfevents.*"))
    assert (folder / STATE_NAME).is_file()
    model, card = load_model(folder)
    assert model.config["feature_maps"] == 4 and model.num_classes == 2
    assert card.name == "blob finder"
    assert [m["epoch"] for m in card.metrics] == [1, 2]
    assert card.training["best_epoch"] == result.best_epoch
    assert card.training["validation"]["method"] == "slices"
    for record in card.metrics:
        assert record["train_loss"] > 0 and record["val_loss"] > 0
        assert 0 <= record["pixel_error"] <= 1 and "rand_error" in record


def test_tensorboard_logs_hold_loss_and_validation_curves(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    image, labels = _blobs()
    train_model(TrainingData([(image, labels)]), tmp_path / "m", fast(epochs=2, steps_per_epoch=5))
    events = EventAccumulator(str(tmp_path / "m" / "logs"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss" in tags and "epoch/val_loss" in tags and "epoch/mean_iou" in tags
    assert [e.step for e in events.Scalars("epoch/val_loss")] == [5, 10]


def test_training_learns_a_simple_task(tmp_path):
    image, labels = _blobs(depth=5)
    result = train_model(
        TrainingData([(image, labels)]),
        tmp_path / "m",
        fast(max_steps=60, steps_per_epoch=20, learning_rate=1e-2),
    )
    last = result.history[-1]
    assert last["pixel_accuracy"] > 0.9
    assert last["val_loss"] < result.history[0]["val_loss"]


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path):
    image, labels = _blobs()
    runs = {}
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        train_model(
            TrainingData([(image, labels)]),
            tmp_path / label,
            fast(epochs=1, steps_per_epoch=4, seed=seed),
        )
        runs[label] = _weights(tmp_path / label)
    assert _same_weights(runs["a"], runs["b"])
    assert not _same_weights(runs["a"], runs["c"])


def _base_model(tmp_path, num_classes=2):
    torch.manual_seed(123)
    base = UNet(num_classes=num_classes, **TINY)
    save_model(base, ModelCard(name="base"), tmp_path / "base")
    return base


def test_fine_tuning_starts_from_the_base_weights(tmp_path):
    base = _base_model(tmp_path)
    image, labels = _blobs()
    # A learning rate of zero keeps the starting weights: they must be the base file's.
    result = train_model(
        TrainingData([(image, labels)]),
        tmp_path / "tuned",
        fast(epochs=1, steps_per_epoch=2, learning_rate=0.0, validation_fraction=0.2),
        base_model=tmp_path / "base",
    )
    assert _same_weights(_weights(tmp_path / "tuned"), base.state_dict())
    scratch = train_model(
        TrainingData([(image, labels)]),
        tmp_path / "scratch",
        fast(epochs=1, steps_per_epoch=2, learning_rate=0.0, seed=0),
    )
    assert not _same_weights(_weights(tmp_path / "scratch"), base.state_dict())
    _, card = load_model(tmp_path / "tuned")
    assert card.parent == str(tmp_path / "base")
    # Epoch 0 scores the base model before any step: its validation loss is the base's own.
    assert result.history[0]["epoch"] == 0 and scratch.history[0]["epoch"] == 1
    held_out = [z for entry in card.training["validation"]["data"] for z in entry["slices"]]
    with torch.no_grad():
        logits = base(torch.from_numpy(image[held_out].astype(np.float32) / 255)[:, None])
    expected = torch.nn.functional.cross_entropy(
        logits, torch.from_numpy(labels[held_out].astype(np.int64))
    )
    assert result.history[0]["val_loss"] == pytest.approx(float(expected), rel=0.02)


def test_fine_tuning_with_a_new_class_keeps_the_shared_weights(tmp_path):
    base = _base_model(tmp_path)
    image, labels = _blobs()
    labels[:, :8, :8] = 2  # a third class appears in the annotations
    train_model(
        TrainingData([(image, labels)]),
        tmp_path / "tuned",
        fast(epochs=1, steps_per_epoch=1, learning_rate=0.0),
        base_model=tmp_path / "base",
    )
    tuned = _weights(tmp_path / "tuned")
    original = base.state_dict()
    assert tuned["decoder.output.weight"].shape[0] == 3
    assert torch.equal(tuned["decoder.output.weight"][:2], original["decoder.output.weight"])
    assert torch.equal(
        tuned["encoder.features.convblock1.conv1.unit.0.weight"],
        original["encoder.features.convblock1.conv1.unit.0.weight"],
    )


def test_sparse_annotations_train_and_validate_on_painted_pixels(tmp_path):
    image, labels = _blobs(depth=8)
    painted = {}
    for z in (2, 5):
        plane = np.full(labels.shape[1:], 255, dtype=np.uint8)
        plane[::3, ::3] = labels[z, ::3, ::3]  # a sparse grid of painted pixels
        painted[z] = plane
    result = train_model(
        TrainingData([TrainingPair(image, painted, name="scribbles")]),
        tmp_path / "m",
        fast(epochs=1, steps_per_epoch=3),
    )
    _, card = load_model(tmp_path / "m")
    # Two painted slices: whole strokes (here single painted dots) are held out, 15 % of
    # each class, and a band around them trains on nothing.
    assert card.training["validation"]["method"] == "strokes"
    assert card.training["validation"]["fraction"] == 0.15
    assert card.training["data"][0]["slices"] == [2, 5]
    painted_count = sum(int((p != 255).sum()) for p in painted.values())
    trained = card.training["data"][0]["labelled_pixels"]
    held_out = result.history[-1]["labelled_pixels"]
    assert 0.12 * painted_count <= held_out <= 0.25 * painted_count
    assert trained + held_out < painted_count  # the guard band around held-out strokes


def test_loss_ignores_unlabelled_pixels():
    logits = torch.randn(1, 2, 4, 4)
    labels = torch.randint(0, 2, (1, 4, 4))
    masked = labels.clone()
    masked[0, :2] = 255
    loss = SegmentationLoss(num_classes=2, dice_weight=1.0)
    other = masked.clone()
    other_logits = logits.clone()
    other_logits[0, :, :2] = torch.randn(2, 2, 4) * 10  # change only unlabelled pixels
    assert float(loss(logits, masked)) == pytest.approx(float(loss(other_logits, other)))
    assert float(loss(logits, masked)) != pytest.approx(float(loss(logits, labels)))
    empty = torch.full((1, 4, 4), 255)
    assert float(loss(logits.requires_grad_(), empty).detach()) == 0.0


def test_cancel_saves_a_state_that_resumes_to_the_uninterrupted_result(tmp_path):
    image, labels = _blobs()
    data, settings = TrainingData([(image, labels)]), fast(epochs=2, steps_per_epoch=3, seed=1)
    train_model(data, tmp_path / "whole", settings)
    polls = []

    def cancel_on_fifth_batch() -> bool:
        polls.append(1)
        return len(polls) == 5

    with pytest.raises(CancelledError):
        train_model(
            data,
            tmp_path / "split",
            settings,
            observers=TrainingObservers(should_cancel=cancel_on_fifth_batch),
        )
    assert (tmp_path / "split" / STATE_NAME).is_file()
    assert (tmp_path / "split" / "last" / "model.pytorch").is_file()
    resumed = train_model(data, tmp_path / "split", settings)
    assert resumed.steps == 6
    assert _same_weights(_weights(tmp_path / "split"), _weights(tmp_path / "whole"))
    assert [m["epoch"] for m in resumed.card.metrics] == [1, 2]


def test_a_run_killed_mid_epoch_resumes_from_its_last_saved_epoch(tmp_path):
    image, labels = _blobs()
    data, settings = TrainingData([(image, labels)]), fast(epochs=3, steps_per_epoch=2, seed=2)
    train_model(data, tmp_path / "whole", settings)

    def die_in_epoch_two(fraction, eta):
        if fraction > 0.5:
            raise KeyboardInterrupt  # the process is killed: nothing gets to clean up

    with pytest.raises(KeyboardInterrupt):
        train_model(
            data,
            tmp_path / "killed",
            settings,
            observers=TrainingObservers(on_progress=die_in_epoch_two),
        )
    resumed = train_model(data, tmp_path / "killed", settings)
    assert resumed.steps == 6
    assert _same_weights(_weights(tmp_path / "killed"), _weights(tmp_path / "whole"))


def test_a_finished_run_is_not_trained_again(tmp_path):
    image, labels = _blobs()
    data = TrainingData([(image, labels)])
    first = train_model(data, tmp_path / "m", fast(epochs=1, steps_per_epoch=2))
    before = _weights(tmp_path / "m")
    again = train_model(data, tmp_path / "m", fast(epochs=1, steps_per_epoch=2))
    assert again.steps == first.steps == 2
    assert _same_weights(_weights(tmp_path / "m"), before)
    restarted = train_model(
        data, tmp_path / "m", fast(epochs=1, steps_per_epoch=2, seed=9), resume=False
    )
    assert restarted.steps == 2
    assert not _same_weights(_weights(tmp_path / "m"), before)


def test_time_budget_stops_training_and_progress_reaches_one(tmp_path):
    image, labels = _blobs()
    reports, epochs = [], []
    result = train_model(
        TrainingData([(image, labels)]),
        tmp_path / "m",
        fast(minutes=1.5 / 60, steps_per_epoch=4),
        observers=TrainingObservers(
            on_progress=lambda f, eta: reports.append((f, eta)), on_epoch=epochs.append
        ),
    )
    assert result.stopped_by == "time_budget"
    # Generous: on a busy CPU one step or validation may take longer than the one before.
    assert result.elapsed_s < 10.0
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(eta is None or eta >= 0 for _, eta in reports)
    assert len(epochs) == len(result.history) >= 1
    assert math.isfinite(epochs[-1]["train_loss"])


def test_no_validation_keeps_the_last_epoch(tmp_path):
    image, labels = _blobs()
    result = train_model(
        TrainingData([(image, labels)]),
        tmp_path / "m",
        fast(epochs=2, steps_per_epoch=2, validation_fraction=0.0),
    )
    assert result.best_epoch == 2 and result.validation == "none"
    assert "val_loss" not in result.history[-1]
    assert _same_weights(_weights(tmp_path / "m"), _weights(tmp_path / "m" / "last"))


@pytest.mark.parametrize(
    "change, where",
    [
        ({"crop_size": 30}, "crop_size"),
        ({"select_best_by": "luck"}, "select_best_by"),
        ({"levels": 0}, "levels"),
        ({"classes": [{"id": 0, "name": "bg"}]}, "labels"),
        ({"class_weights": [1.0]}, "class_weights"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_parameters_are_input_errors_that_name_the_argument(tmp_path, change, where):
    image, labels = _blobs(depth=2)
    options = {key: value for key, value in change.items() if key != "classes"}
    data = TrainingData([(image, labels)], classes=change.get("classes"))
    with pytest.raises(InputError) as caught:
        train_model(data, tmp_path / "m", fast(epochs=1, **options))
    assert caught.value.where == where
    assert not (tmp_path / "m" / "model.pytorch").exists()


def test_cosine_schedule_decays_the_learning_rate_and_constant_keeps_it(tmp_path):
    image, labels = _blobs()
    data = TrainingData([(image, labels)])
    settings = fast(epochs=3, steps_per_epoch=2, validation_fraction=0.0, learning_rate=0.01)
    cosine = train_model(data, tmp_path / "cosine", settings)
    rates = [record["learning_rate"] for record in cosine.history]
    assert rates == sorted(rates, reverse=True) and rates[0] < 0.01
    assert rates[-1] == pytest.approx(0.01 * 0.02)  # ends at 2 % of the initial rate
    constant = train_model(data, tmp_path / "constant", settings.replace(lr_schedule="constant"))
    assert [record["learning_rate"] for record in constant.history] == [0.01] * 3


def test_three_d_networks_train_on_labelled_z_runs(tmp_path):
    image, labels = _blobs(depth=8, size=32)
    labels[3] = 255  # a gap: two labelled runs
    result = train_model(
        TrainingData([(image, labels)]),
        tmp_path / "m3d",
        TrainingSettings(
            dims=3,
            feature_maps=2,
            levels=1,
            crop_size=(4, 16, 16),
            batch_size=2,
            epochs=1,
            steps_per_epoch=2,
            device="cpu",
        ),
    )
    model, card = load_model(tmp_path / "m3d")
    assert model.dims == 3
    assert card.training["validation"]["method"] == "regions"
    assert result.history[-1]["labelled_pixels"] > 0
