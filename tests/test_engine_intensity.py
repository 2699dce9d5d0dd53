"""Per-volume percentile scaling and pixel-size zoom: the same in training and inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from biosegment.engine import UNet, load_model, save_model, segment_volume
from biosegment.engine.intensity import percentile_normalisation, scaler_for, volume_range
from biosegment.engine.model_card import ModelCard
from biosegment.engine.pixel_size import zoom_for
from biosegment.engine.samples import TrainingPair, collect_stacks
from biosegment.engine.train_settings import TrainingSettings
from biosegment.engine.training import TrainingData, train_model
from biosegment.errors import InputError
from biosegment.volumes import open_volume, write_volume

# Tiny networks on one thread (the shared fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cells(shape=(4, 64, 64), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Grey cells with dark one-pixel membranes (class 1), uint8, with noise."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(0, 5, 5))
    regions = field > 0
    membranes = np.zeros(shape, dtype=np.uint8)
    membranes[:, 1:, :] |= regions[:, 1:, :] != regions[:, :-1, :]
    membranes[:, :, 1:] |= regions[:, :, 1:] != regions[:, :, :-1]
    image = np.where(membranes == 1, 60.0, 150.0) + rng.normal(0, 8, shape)
    return np.clip(image, 0, 255).astype(np.uint8), membranes


def test_percentiles_make_differently_exposed_volumes_alike(tmp_path):
    image, _ = _cells()
    # Another microscope: the same tissue, half the contrast and brighter.
    other = (image.astype(np.float32) * 0.5 + 100).astype(np.uint8)
    card = percentile_normalisation(1.0, 99.0)
    write_volume(tmp_path / "a.tif", image)
    write_volume(tmp_path / "b.tif", other)
    with open_volume(tmp_path / "a.tif") as a, open_volume(tmp_path / "b.tif") as b:
        scaled_a = scaler_for(a, card)(a.read_block(0, 4))
        scaled_b = scaler_for(b, card)(b.read_block(0, 4))
        by_dtype = scaler_for(b, None)(b.read_block(0, 4))
    assert scaled_a.dtype == np.float32 and 0 <= scaled_a.min() and scaled_a.max() <= 1
    assert np.abs(scaled_a - scaled_b).mean() < 0.02
    assert np.abs(scaled_a - by_dtype).mean() > 0.1  # dividing by 255 keeps them apart
    lo, hi = volume_range(image, 1.0, 99.0)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(image, [1, 99])), abs=1.0)


def test_unknown_or_broken_normalisation_is_an_input_error_naming_the_field():
    image, _ = _cells()
    with pytest.raises(InputError) as error:
        scaler_for(image, {"method": "histogram"})
    assert error.value.where == "normalisation.method"
    with pytest.raises(InputError):
        scaler_for(image, percentile_normalisation(90.0, 10.0))
    flat = np.full((2, 8, 8), 7, dtype=np.uint8)
    assert volume_range(flat) == (7.0, 8.0)


def test_training_stacks_are_scaled_like_the_volume_inference_reads():
    image, labels = _cells()
    card = percentile_normalisation()
    stacks = collect_stacks([TrainingPair(image, labels, name="cells")], normalisation=card)
    expected = scaler_for(image, card)(image[2:3])
    # the raw pixels are kept (a byte a pixel here), scaled with the volume's percentiles
    assert stacks[2].image.dtype == np.uint8
    np.testing.assert_array_equal(stacks[2].scaled(stacks[2].image), expected)
    raw = collect_stacks([TrainingPair(image, labels, name="cells")])
    assert raw[2].image.dtype == np.uint8  # the old way: scaled per crop by the dtype
    np.testing.assert_array_equal(raw[2].scaled(raw[2].image), image[2:3] / np.float32(255))
    with pytest.raises(InputError) as error:
        collect_stacks([TrainingPair(image, labels, name="cells", weight=0)])
    assert error.value.where == "weight"


def test_a_model_trained_with_percentiles_says_so_and_its_fine_tunes_inherit_it(tmp_path):
    image, labels = _cells()
    fast = TrainingSettings(
        feature_maps=4,
        levels=2,
        norm="instance",
        crop_size=32,
        batch_size=2,
        device="cpu",
        validation_fraction=0.0,
        epochs=1,
        steps_per_epoch=2,
    )
    train_model(
        TrainingData([(image, labels)], normalisation=percentile_normalisation()),
        tmp_path / "base",
        fast,
    )
    base, card = load_model(tmp_path / "base")
    assert card.normalisation["method"] == "percentile"
    card.pixel_size = {"in_plane_nm": [4.0, 10.0]}
    save_model(base, card, tmp_path / "base")
    train_model(
        TrainingData([(image, labels)]), tmp_path / "tuned", fast, base_model=tmp_path / "base"
    )
    _, tuned = load_model(tmp_path / "tuned")
    assert tuned.normalisation == card.normalisation
    assert tuned.pixel_size == {"in_plane_nm": [4.0, 10.0]}
    assert ModelCard.from_json(tuned.to_json()).pixel_size == tuned.pixel_size


def test_zoom_is_asked_for_only_outside_the_models_pixel_range():
    expected = {"in_plane_nm": [4.0, 10.0]}
    assert zoom_for(expected, (50, 4, 4)) is None
    assert zoom_for(expected, (10, 8, 8)) is None
    assert zoom_for(expected, (20, 20, 20)) == pytest.approx(2.0)
    assert zoom_for(expected, (40, 2, 2)) == pytest.approx(0.5)
    assert zoom_for(expected, None) is None
    assert zoom_for({}, (20, 20, 20)) is None
    assert zoom_for(expected, (0, 0, 0)) is None


def test_zoomed_inference_returns_labels_on_the_volumes_grid(tmp_path):
    torch.manual_seed(0)
    model = UNet(dims=2, feature_maps=4, levels=2, norm="none", num_classes=2).eval()
    image, _ = _cells(shape=(2, 48, 40))
    write_volume(tmp_path / "raw.tif", image)
    with open_volume(tmp_path / "raw.tif") as volume:
        plain = segment_volume(volume, model, device="cpu")
        zoomed = segment_volume(volume, model, device="cpu", zoom=2.0)
        # A zoom that changes nothing but the grid gives (almost) the same labels.
        near_one = segment_volume(volume, model, device="cpu", zoom=1.01)
        written = segment_volume(
            volume, model, device="cpu", zoom=2.0, output=tmp_path / "labels.tif"
        )
    assert zoomed.shape == plain.shape == (2, 48, 40) and zoomed.dtype == np.uint8
    assert (near_one == plain).mean() > 0.95
    with open_volume(written) as labels:
        assert (labels.read_block(0, 2) == zoomed).all()
    with open_volume(tmp_path / "raw.tif") as volume, pytest.raises(InputError) as error:
        segment_volume(volume, model, zoom=50.0)
    assert error.value.where == "zoom"
