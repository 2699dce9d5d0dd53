"""Training-crop augmentations: reproducible, geometry shared by image and labels, ids kept."""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.engine.augment import (
    AugmentConfig,
    adjust_intensity,
    augment_pair,
    crop_at,
    elastic_deform,
    flip_and_rotate,
    random_crop,
)


def _blocky_labels(shape=(32, 32), seed=0) -> np.ndarray:
    """Class ids in 8x8 blocks, with some unlabelled (255) blocks."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(
        np.array([0, 1, 2, 255], dtype=np.uint8), size=(shape[0] // 8, shape[1] // 8)
    )
    return np.kron(coarse, np.ones((8, 8), dtype=np.uint8))


def _image_encoding(labels: np.ndarray) -> np.ndarray:
    # An image that carries its labels, so a geometry change can be checked on both.
    return labels.astype(np.float32) / 255.0


def test_crop_at_pads_image_by_mirroring_and_labels_as_unlabelled():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    labels = np.ones((4, 4), dtype=np.uint8)
    image_crop, label_crop = crop_at(image, labels, (-1, 2), (3, 4))
    assert image_crop.shape == label_crop.shape == (3, 4)
    assert label_crop[0].tolist() == [255, 255, 255, 255]  # above the top edge
    assert label_crop[1:, :2].tolist() == [[1, 1], [1, 1]]  # inside
    assert (label_crop[:, 2:] == 255).all()  # right of the right edge
    assert image_crop[1:, :2].tolist() == [[2, 3], [6, 7]]
    assert image_crop[0, :2].tolist() == [2, 3]  # mirrored row 0
    assert image_crop[1, 2:].tolist() == [3, 2]  # mirrored columns


def test_random_crop_is_a_window_of_the_source_and_reproducible():
    image = np.random.default_rng(1).random((40, 50), dtype=np.float32)
    labels = (image > 0.5).astype(np.uint8)
    first = random_crop(image, labels, (16, 16), np.random.default_rng(7))
    again = random_crop(image, labels, (16, 16), np.random.default_rng(7))
    np.testing.assert_array_equal(first[0], again[0])
    # Find the window the crop came from: its top-left pixel value is unique in random data.
    y, x = np.argwhere(image == first[0][0, 0])[0]
    np.testing.assert_array_equal(first[0], image[y : y + 16, x : x + 16])
    np.testing.assert_array_equal(first[1], labels[y : y + 16, x : x + 16])


def test_random_crop_pads_axes_shorter_than_the_crop():
    image = np.zeros((5, 40), dtype=np.float32)
    labels = np.zeros((5, 40), dtype=np.uint8)
    image_crop, label_crop = random_crop(image, labels, (16, 16), np.random.default_rng(0))
    assert image_crop.shape == (16, 16)
    assert (label_crop == 255).sum() == 11 * 16


def test_flip_and_rotate_moves_image_and_labels_together_through_all_symmetries():
    labels = _blocky_labels()
    image = _image_encoding(labels)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(80):
        new_image, new_labels = flip_and_rotate(image, labels, rng)
        np.testing.assert_array_equal(np.rint(new_image * 255).astype(np.uint8), new_labels)
        assert new_labels.flags.c_contiguous
        seen.add(new_labels.tobytes())
    assert len(seen) == 8  # identity, 3 rotations, 4 mirrorings


def test_rotation_keeps_the_shape_of_non_square_crops():
    labels = np.zeros((8, 16), dtype=np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, new_labels = flip_and_rotate(labels.astype(np.float32), labels, rng)
        assert new_labels.shape == (8, 16)


def test_adjust_intensity_stays_in_range_and_is_reproducible():
    image = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    changed = adjust_intensity(
        image, np.random.default_rng(5), brightness=0.3, contrast=0.5, gamma=0.5
    )
    again = adjust_intensity(
        image, np.random.default_rng(5), brightness=0.3, contrast=0.5, gamma=0.5
    )
    assert changed.dtype == np.float32
    assert changed.min() >= 0.0 and changed.max() <= 1.0
    np.testing.assert_array_equal(changed, again)
    assert not np.allclose(changed, image)
    # Brightness, contrast (positive factor) and gamma all keep the order of grey values.
    assert (np.diff(changed.ravel()) >= 0).all()


def test_elastic_deform_keeps_class_ids_and_unlabelled_marker():
    labels = _blocky_labels((48, 48))
    image = _image_encoding(labels)
    warped_image, warped_labels = elastic_deform(
        image, labels, np.random.default_rng(2), displacement=5.0
    )
    assert warped_labels.dtype == np.uint8
    assert set(np.unique(warped_labels)) <= set(np.unique(labels))
    assert (warped_labels == 255).any()
    assert not np.array_equal(warped_labels, labels)
    # Image and labels moved by one field: they agree except along block edges, where the
    # image is interpolated; labels warped by another field agree far less.
    image_ids = np.rint(warped_image * 255).astype(np.uint8)
    _, other_labels = elastic_deform(image, labels, np.random.default_rng(99), displacement=5.0)
    assert (image_ids == warped_labels).mean() > 0.85
    assert (image_ids == other_labels).mean() < (image_ids == warped_labels).mean() - 0.1


def test_elastic_deform_without_displacement_is_the_identity():
    labels = _blocky_labels()
    image = np.random.default_rng(0).random(labels.shape, dtype=np.float32)
    warped_image, warped_labels = elastic_deform(
        image, labels, np.random.default_rng(0), displacement=0.0
    )
    np.testing.assert_allclose(warped_image, image, atol=1e-6)
    np.testing.assert_array_equal(warped_labels, labels)


def test_elastic_deform_odd_shapes():
    labels = np.zeros((37, 23), dtype=np.uint8)
    warped_image, warped_labels = elastic_deform(
        labels.astype(np.float32), labels, np.random.default_rng(0), control_points=3
    )
    assert warped_image.shape == warped_labels.shape == (37, 23)


def test_three_d_crops_get_the_same_in_plane_change_on_every_slice():
    plane = _blocky_labels()
    labels = np.stack([plane] * 4)
    image = _image_encoding(labels)
    config = AugmentConfig(elastic_probability=1.0, intensity_probability=1.0)
    new_image, new_labels = augment_pair(image, labels, np.random.default_rng(4), config)
    assert new_labels.shape == (4, 32, 32)
    for z in range(1, 4):
        np.testing.assert_array_equal(new_labels[z], new_labels[0])
        np.testing.assert_allclose(new_image[z], new_image[0])


@pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig(elastic_probability=1.0)])
def test_augment_pair_is_reproducible_with_a_seed(config):
    labels = _blocky_labels()
    image = np.random.default_rng(0).random(labels.shape, dtype=np.float32)
    first = augment_pair(image, labels, np.random.default_rng(11), config)
    again = augment_pair(image, labels, np.random.default_rng(11), config)
    other = [
        augment_pair(image, labels, np.random.default_rng(seed), config)[1]
        for seed in range(12, 20)
    ]
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert any(not np.array_equal(first[1], labels_other) for labels_other in other)
    assert first[0].dtype == np.float32


def test_augment_config_none_changes_nothing():
    labels = _blocky_labels()
    image = np.random.default_rng(0).random(labels.shape, dtype=np.float32)
    new_image, new_labels = augment_pair(
        image, labels, np.random.default_rng(0), AugmentConfig.none()
    )
    np.testing.assert_array_equal(new_image, image)
    np.testing.assert_array_equal(new_labels, labels)
    assert AugmentConfig.none().as_dict()["flip"] is False
