"""Augmentations for other microscopes: zoom, inversion, noise, blur and section artefacts."""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.engine.augment import (
    AugmentConfig,
    add_noise,
    augment_pair,
    blur,
    invert,
    rescale,
    section_artefacts,
)


def _stripes(shape=(64, 64), period=8) -> tuple[np.ndarray, np.ndarray]:
    """Vertical membrane stripes one pixel wide every ``period`` columns, and their labels."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, ::period] = 1
    labels[:4] = 255
    image = np.where(labels == 1, 0.1, 0.8).astype(np.float32)
    return image, labels


def test_rescale_magnifies_about_the_centre_and_keeps_ids():
    image, labels = _stripes()
    zoomed_image, zoomed_labels = rescale(image, labels, 2.0)
    assert zoomed_image.shape == image.shape and zoomed_image.dtype == np.float32
    assert set(np.unique(zoomed_labels)) <= {0, 1, 255}
    # Twice the magnification: stripes twice as far apart and twice as wide.
    row = zoomed_labels[32]
    starts = np.flatnonzero(np.diff(row.astype(int)) == 1) + 1
    assert np.all(np.diff(starts) == 16)
    assert np.count_nonzero(row == 1) == pytest.approx(np.count_nonzero(labels[32] == 1), abs=2)


def test_rescale_shrink_mirrors_the_uncovered_border_and_rejects_bad_factors():
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[:, 0::16] = labels[:, 1::16] = 1  # 2-pixel stripes, 16 apart
    image = np.where(labels == 1, 0.1, 0.8).astype(np.float32)
    small_image, small_labels = rescale(image, labels, 0.5)
    assert small_image.shape == (64, 64)
    # Half as far apart in the zoomed source; past x = 48 lies the mirrored border.
    assert np.flatnonzero(small_labels[32, :48] == 1).tolist() == [0, 8, 16, 24, 32, 40]
    with pytest.raises(ValueError):
        rescale(image, labels, 0.0)
    with pytest.raises(ValueError):
        rescale(image, labels[:10], 1.5)


def test_rescale_by_one_is_the_identity():
    image, labels = _stripes()
    same_image, same_labels = rescale(image, labels, 1.0)
    np.testing.assert_allclose(same_image, image, atol=1e-6)
    assert (same_labels == labels).all()


def test_invert_noise_blur_and_artefacts_stay_in_range():
    rng = np.random.default_rng(3)
    image, _ = _stripes()
    assert np.allclose(invert(image), 1.0 - image)
    noisy = add_noise(image, rng, sigma=0.2)
    assert noisy.dtype == np.float32 and 0.0 <= noisy.min() and noisy.max() <= 1.0
    assert not np.allclose(noisy, image)
    blurred = blur(image, rng, sigma=2.0)
    assert blurred.std() < image.std()
    for _ in range(12):  # every kind of artefact, each still an image in [0, 1]
        changed = section_artefacts(image, rng)
        assert changed.shape == image.shape and changed.dtype == np.float32
        assert 0.0 <= changed.min() and changed.max() <= 1.0
        assert not np.allclose(changed, image)


def test_blur_leaves_z_alone_in_three_d_crops():
    rng = np.random.default_rng(0)
    volume = np.zeros((3, 16, 16), dtype=np.float32)
    volume[1] = 1.0
    blurred = blur(volume, rng, sigma=2.0)
    assert (blurred[0] == 0).all() and (blurred[2] == 0).all()


def test_new_augmentations_are_off_by_default_and_old_draws_are_unchanged():
    image, labels = _stripes()
    config = AugmentConfig()
    assert config.scale_probability == config.invert_probability == 0.0
    assert config.noise_probability == config.blur_probability == 0.0
    assert config.artefact_probability == 0.0
    # The same seed gives the same crop as the flip/rotate/intensity chain alone.
    first = augment_pair(image, labels, np.random.default_rng(7), config)
    from biosegment.engine.augment import adjust_intensity, flip_and_rotate

    rng = np.random.default_rng(7)
    expected_image, expected_labels = flip_and_rotate(image, labels, rng)
    if rng.random() < config.intensity_probability:
        expected_image = adjust_intensity(
            expected_image,
            rng,
            brightness=config.brightness,
            contrast=config.contrast,
            gamma=config.gamma,
        )
    np.testing.assert_array_equal(first[0], expected_image)
    np.testing.assert_array_equal(first[1], expected_labels)


def test_every_augmentation_on_is_reproducible_and_keeps_ids():
    image, labels = _stripes()
    config = AugmentConfig(
        scale_probability=1.0,
        invert_probability=1.0,
        noise_probability=1.0,
        blur_probability=1.0,
        artefact_probability=1.0,
        elastic_probability=1.0,
        intensity_probability=1.0,
    )
    a = augment_pair(image, labels, np.random.default_rng(11), config)
    b = augment_pair(image, labels, np.random.default_rng(11), config)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert set(np.unique(a[1])) <= {0, 1, 255}
    assert a[0].dtype == np.float32 and 0.0 <= a[0].min() and a[0].max() <= 1.0
    # Inverted: the membrane pixels (dark in the source) are now the brighter ones.
    assert a[0][a[1] == 1].mean() > a[0][a[1] == 0].mean()
    assert config.as_dict()["scale_range"] == [0.75, 1.33]
