"""Label volumes as class ids: 0/255 binary masks become 0/1, everything else is kept."""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.volumes import is_binary_mask, open_volume, read_class_ids, write_volume


def test_binary_mask_becomes_background_and_class_one():
    mask = np.array([[0, 255, 255], [0, 0, 255]], np.uint8)
    ids = read_class_ids(mask)
    assert ids.dtype == np.uint8
    assert ids.tolist() == [[0, 1, 1], [0, 0, 1]]


def test_all_foreground_mask_is_class_one_and_all_zero_is_unchanged():
    assert read_class_ids(np.full((2, 2), 255, np.uint8)).tolist() == [[1, 1], [1, 1]]
    assert read_class_ids(np.zeros((2, 2), np.uint8)).tolist() == [[0, 0], [0, 0]]


def test_class_ids_with_unlabeled_255_are_unchanged():
    labels = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    np.testing.assert_array_equal(read_class_ids(labels), labels)


def test_other_dtypes_are_unchanged_and_bool_masks_become_uint8():
    wide = np.array([0, 255, 65535], np.uint16)
    np.testing.assert_array_equal(read_class_ids(wide), wide)
    assert read_class_ids(wide).dtype == np.uint16
    flags = np.array([True, False])
    assert read_class_ids(flags).tolist() == [1, 0] and read_class_ids(flags).dtype == np.uint8


def test_whole_volume_decision_applies_to_blocks(tmp_path):
    """A block of a multi-class volume may hold only 0 and 255; the volume decides."""
    volume = np.zeros((4, 8, 8), np.uint8)
    volume[0, :4] = 255  # unlabeled
    volume[3, 2, 2] = 2  # a real class further on
    path = write_volume(tmp_path / "gt.tif", volume)
    with open_volume(path) as reader:
        assert not is_binary_mask(reader)
        first = reader.read_slice(0)
        assert is_binary_mask(first)  # the block alone would mislead
        np.testing.assert_array_equal(read_class_ids(first, binary=False), first)


def test_isbi_labels_read_as_membrane_background_and_interior_class(isbi_dir):
    with open_volume(isbi_dir / "train-labels.tif") as reader:
        assert is_binary_mask(reader)
        ids = read_class_ids(reader.read_block(0, 2), binary=True)
    assert set(np.unique(ids).tolist()) == {0, 1}
    assert 0.6 < ids.mean() < 0.9  # about 78 % of ISBI pixels are cell interior


@pytest.mark.parametrize(
    "values, expected",
    [([0, 255], True), ([255], True), ([0], False), ([0, 1, 255], False), ([0, 254], False)],
)
def test_is_binary_mask_on_arrays(values, expected):
    assert is_binary_mask(np.array(values, np.uint8)) is expected
