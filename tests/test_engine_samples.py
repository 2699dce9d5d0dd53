"""Training material: labelled slices read, validation set aside, crops drawn around labels."""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.engine.augment import AugmentConfig
from biosegment.engine.samples import (
    SamplePool,
    TrainingPair,
    collect_stacks,
    describe_stacks,
    split_validation,
)
from biosegment.errors import InputError
from biosegment.volumes import open_volume, write_volume


def _volume(depth=10, size=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (depth, size, size), dtype=np.uint8)


def test_dense_labels_give_one_stack_per_slice_in_2d_and_one_run_in_3d():
    image = _volume(depth=4)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[2] = 255  # an unlabelled slice in the middle
    two_d = collect_stacks([TrainingPair(image, labels, name="vol")], dims=2)
    assert [s.z_start for s in two_d] == [0, 1, 3]
    np.testing.assert_array_equal(two_d[2].image[0], image[3])
    three_d = collect_stacks([TrainingPair(image, labels, name="vol")], dims=3)
    assert [(s.z_start, s.labels.shape[0]) for s in three_d] == [(0, 2), (3, 1)]


def test_sparse_mapping_reads_only_annotated_slices_from_a_volume_file(tmp_path):
    image = _volume(depth=12)
    path = tmp_path / "raw.tif"
    write_volume(path, image)
    scribble = np.full((48, 48), 255, dtype=np.uint8)
    scribble[10:14, 5:30] = 1
    scribble[30:33, 5:30] = 0
    with open_volume(path) as reader:
        stacks = collect_stacks([TrainingPair(reader, {7: scribble}, name="raw.tif")])
    assert len(stacks) == 1 and stacks[0].z_start == 7
    np.testing.assert_array_equal(stacks[0].image[0], image[7])
    assert stacks[0].labelled_pixels == 4 * 25 + 3 * 25
    assert describe_stacks(stacks) == [{"source": "raw.tif", "slices": [7], "labelled_pixels": 175}]


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.full((3, 48, 48), 255, np.uint8), "no labelled pixels"),
        (np.zeros((3, 40, 48), np.uint8), "shape"),
        ({5: np.zeros((48, 48), np.uint8)}, "outside"),
        ({0: np.zeros((48, 40), np.uint8)}, "shape"),
        ({0: np.full((48, 48), 0.5)}, "integer class ids"),
    ],
)
def test_bad_labels_are_input_errors_naming_the_pair(labels, message):
    with pytest.raises(InputError, match=message) as caught:
        collect_stacks([TrainingPair(_volume(depth=3), labels, name="my pair")])
    assert caught.value.source == "my pair"


def test_enough_slices_hold_out_whole_slices_spread_over_the_annotated_range():
    image = _volume(depth=30)
    labels = np.full(image.shape, 255, dtype=np.uint8)
    annotated = list(range(12, 22))  # annotations in the middle of the volume only
    labels[annotated] = 1
    stacks = collect_stacks([TrainingPair(image, labels)])
    train, validation, method = split_validation(stacks, fraction=0.2)
    assert method == "slices"
    held = [s.z_start for s in validation]
    assert len(held) == 2
    assert all(z in annotated for z in held)
    assert held[0] > annotated[0] and held[-1] < annotated[-1]  # not a block at one end
    assert not set(held) & {s.z_start for s in train}


def test_few_slices_hold_out_a_region_of_each_slice():
    image = _volume(depth=2)
    labels = np.zeros(image.shape, dtype=np.uint8)
    stacks = collect_stacks([TrainingPair(image, labels)])
    train, validation, method = split_validation(stacks, fraction=0.25)
    assert method == "regions" and len(train) == len(validation) == 2
    for kept, held in zip(train, validation):
        kept_mask = kept.labels != 255
        held_mask = held.labels != 255
        assert not (kept_mask & held_mask).any()
        assert (kept_mask | held_mask).all()
        assert 0.15 < held_mask.mean() < 0.35
        # The held-out part is a band on the right: every held column is right of every kept one.
        assert np.nonzero(held_mask)[2].min() > np.nonzero(kept_mask)[2].max()


def test_no_validation_when_fraction_is_zero_and_bad_fraction_rejected():
    stacks = collect_stacks([TrainingPair(_volume(depth=3), np.zeros((3, 48, 48), np.uint8))])
    train, validation, method = split_validation(stacks, fraction=0.0)
    assert (len(train), validation, method) == (3, [], "none")
    with pytest.raises(InputError, match="fraction"):
        split_validation(stacks, fraction=1.0)


def test_crops_from_sparse_labels_always_hold_labelled_pixels():
    image = _volume(depth=1, size=200)
    labels = np.full(image.shape, 255, dtype=np.uint8)
    labels[0, 150:153, 20:24] = 1  # one tiny scribble
    pool = SamplePool(
        collect_stacks([TrainingPair(image, labels)]),
        crop_size=(32, 32),
        augment=AugmentConfig.none(),
    )
    rng = np.random.default_rng(0)
    for _ in range(30):
        crop_image, crop_labels = pool.draw_crop(rng)
        assert crop_image.shape == (32, 32) and crop_image.dtype == np.float32
        assert (crop_labels == 1).any()
        assert 0.0 <= crop_image.min() and crop_image.max() <= 1.0


def test_batches_have_network_shapes_and_are_reproducible():
    image = _volume(depth=3, size=40)
    labels = (image > 128).astype(np.uint8)
    pool = SamplePool(
        collect_stacks([TrainingPair(image, labels)]), crop_size=(32, 32), augment=AugmentConfig()
    )
    images, batch_labels = pool.draw_batch(np.random.default_rng(5), 3)
    again, _ = pool.draw_batch(np.random.default_rng(5), 3)
    assert images.shape == (3, 1, 32, 32) and batch_labels.shape == (3, 32, 32)
    assert batch_labels.dtype == np.int64
    np.testing.assert_array_equal(images, again)


def test_three_d_crops_pad_thin_stacks():
    image = _volume(depth=2, size=32)
    labels = np.ones(image.shape, dtype=np.uint8)
    pool = SamplePool(
        collect_stacks([TrainingPair(image, labels)], dims=3),
        crop_size=(4, 16, 16),
        augment=AugmentConfig.none(),
    )
    crop_image, crop_labels = pool.draw_crop(np.random.default_rng(0))
    assert crop_image.shape == crop_labels.shape == (4, 16, 16)
    assert (crop_labels == 255).sum() == 2 * 16 * 16  # two padded slices, unlabelled


def _painted_strokes(size=160) -> np.ndarray:
    """One slice with twelve separate dabs per class, as a person paints them, on 255."""
    plane = np.full((size, size), 255, dtype=np.uint8)
    for row in range(4):
        for column in range(6):
            y, x = 10 + row * 38, 8 + column * 26
            plane[y : y + 6, x : x + 12] = (row + column) % 2
    return plane


def test_sparse_strokes_hold_out_whole_strokes_that_training_never_sees():
    from scipy import ndimage

    image = _volume(depth=3, size=160)
    painted = {1: _painted_strokes()}
    stacks = collect_stacks([TrainingPair(image, painted, name="scribbles")])
    train, validation, method = split_validation(stacks, fraction=0.15)
    assert method == "strokes" and len(train) == len(validation) == 1
    kept = train[0].labels[0] != 255
    held = validation[0].labels[0] != 255
    assert held.any() and kept.any()
    assert not (kept & held).any()
    # Nothing that trains lies within the guard band of a held-out stroke.
    distance = ndimage.distance_transform_edt(~held)
    assert distance[kept].min() > 4
    original = painted[1] != 255
    strokes, count = ndimage.label(original)
    for stroke in range(1, count + 1):
        inside = strokes == stroke
        # Whole strokes: a stroke is held out entirely or not at all.
        assert held[inside].all() or not held[inside].any()
    for class_id in (0, 1):
        share = (validation[0].labels[0] == class_id).sum() / (painted[1] == class_id).sum()
        assert 0.1 <= share <= 0.3, (class_id, share)
    # The choice is repeatable.
    again = split_validation(stacks, fraction=0.15)[1]
    np.testing.assert_array_equal(again[0].labels, validation[0].labels)


def test_one_long_stroke_per_class_is_cut_into_pieces_so_a_grid_still_validates():
    image = _volume(depth=1, size=256)
    plane = np.full((256, 256), 255, dtype=np.uint8)
    plane[::32, :] = 0  # rows and columns of a grid: one connected stroke per class
    plane[:, ::32] = 0
    plane[100:104, 10:250] = 1
    stacks = collect_stacks([TrainingPair(image, plane[np.newaxis], name="grid")])
    train, validation, method = split_validation(stacks, fraction=0.15)
    assert method == "strokes"
    for class_id in (0, 1):
        held = (validation[0].labels == class_id).sum()
        kept = (train[0].labels == class_id).sum()
        assert held > 0 and kept > 0
    assert not ((train[0].labels != 255) & (validation[0].labels != 255)).any()


def test_strokes_of_each_class_are_drawn_equally_often_however_much_was_painted():
    image = np.random.default_rng(0).integers(0, 255, (1, 256, 256), dtype=np.uint8)
    labels = np.full((1, 256, 256), 255, np.uint8)
    labels[0, 10:130, 10:200] = 0  # ten corrections' worth of background ...
    labels[0, 120:124, 220:240] = 1  # ... beside one short stroke of the object
    assert (labels == 0).sum() > 200 * (labels == 1).sum()
    pool = SamplePool(
        collect_stacks([TrainingPair(image, {0: labels[0]})]),
        crop_size=(32, 32),
        augment=AugmentConfig.none(),
    )
    rng = np.random.default_rng(1)
    with_object = sum(bool((pool.draw_crop(rng)[1] == 1).any()) for _ in range(400))
    assert 0.4 <= with_object / 400 <= 0.7
