"""Objects from class labels: blockwise connected components and the watershed split.

The reference is scipy: on any mask that fits in memory, the blockwise labelling must give
exactly ``scipy.ndimage.label``'s ids, whatever the slab size, so objects crossing slab borders
keep one id and the numbering does not depend on how the volume was cut.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential

from biosegment.engine.instances import (
    connectivity_structure,
    label_instances,
    voxels_for_volume,
)
from biosegment.engine.object_boxes import object_boxes
from biosegment.engine.object_split import split_touching
from biosegment.engine.volume_blocks import BlockSource
from biosegment.errors import InputError


def _random_mask(seed: int, shape=(23, 17, 19), density=0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smoothed noise makes blobs of many sizes and shapes, most of them crossing slab borders.
    noise = ndimage.uniform_filter(rng.random(shape), size=3)
    return noise > np.quantile(noise, 1 - density)


def _ball(shape, centre, radius) -> np.ndarray:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("block_planes", [1, 2, 5, 8, 23, 64])
def test_ids_equal_scipy_label_for_every_slab_size(connectivity, block_planes):
    for seed in range(4):
        mask = _random_mask(seed, density=0.2 + 0.1 * seed)
        expected, count = ndimage.label(mask, structure=connectivity_structure(connectivity))
        ids = np.zeros(mask.shape, np.uint32)
        found = label_instances(
            mask, ids, class_ids=(True,), connectivity=connectivity, block_planes=block_planes
        )
        assert found.objects == count
        np.testing.assert_array_equal(ids, expected)
        assert found.voxels.tolist() == [0, *np.bincount(expected.ravel())[1:].tolist()]


def test_an_object_crossing_every_slab_border_keeps_one_id():
    # A U whose arms meet only in the last plane: the arms are separate labels in every slab
    # but the last, and must end up one object numbered before the dot that comes between.
    mask = np.zeros((12, 5, 9), bool)
    mask[:, 1, 1] = True
    mask[:, 1, 7] = True
    mask[-1, 1, 1:8] = True
    mask[3, 3, 4] = True
    ids = np.zeros(mask.shape, np.uint32)
    found = label_instances(mask, ids, class_ids=(True,), block_planes=1)
    assert found.objects == 2
    assert set(np.unique(ids[:, 1, [1, 7]])) == {1}
    assert ids[3, 3, 4] == 2
    np.testing.assert_array_equal(ids, ndimage.label(mask)[0])


def test_objects_touching_only_at_a_corner_across_a_border_join_with_26_connectivity():
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner contact across the slab border z 1|2
    faces, corners = np.zeros((2, 4, 4, 4), np.uint32)
    assert (
        label_instances(mask, faces, class_ids=(True,), connectivity=1, block_planes=2).objects == 2
    )
    assert (
        label_instances(mask, corners, class_ids=(True,), connectivity=3, block_planes=2).objects
        == 1
    )


@pytest.mark.parametrize("block_planes", [1, 3, 10])
def test_small_objects_are_removed_and_the_rest_renumbered_in_order(block_planes):
    mask = _random_mask(7, shape=(20, 16, 16), density=0.3)
    labels, _ = ndimage.label(mask)
    expected, _, _ = relabel_sequential(remove_small_objects(labels, max_size=11))
    ids = np.zeros(mask.shape, np.uint32)
    found = label_instances(mask, ids, class_ids=(True,), min_voxels=12, block_planes=block_planes)
    np.testing.assert_array_equal(ids, expected)
    assert found.removed == labels.max() - expected.max() > 0
    assert found.voxels[1:].min() >= 12


def test_minimum_volume_in_nm3_becomes_voxels():
    assert voxels_for_volume(1000.0, (10.0, 5.0, 5.0)) == 4  # 250 nm³ per voxel: exactly 4
    assert voxels_for_volume(1001.0, (10.0, 5.0, 5.0)) == 5
    assert voxels_for_volume(0.0, (1.0, 1.0, 1.0)) == 0
    with pytest.raises(InputError, match="voxel size"):
        voxels_for_volume(10.0, (1.0, 0.0, 1.0))
    with pytest.raises(InputError) as error:
        voxels_for_volume(-1.0, (1.0, 1.0, 1.0))
    assert error.value.where == "min_volume_nm3"


def test_several_classes_get_consecutive_id_ranges_in_the_order_asked():
    classes = np.zeros((6, 8, 8), np.uint8)
    classes[0:2, 0:2, 0:2] = 2
    classes[4:6, 6:8, 6:8] = 2
    classes[1:5, 4, 4] = 1
    classes[3, 0, 7] = 3  # not asked for
    ids = np.zeros(classes.shape, np.uint32)
    found = label_instances(classes, ids, class_ids=(2, 1), block_planes=2)
    assert found.first_id == {2: 1, 1: 3} and found.count == {2: 2, 1: 1}
    assert found.class_of_id.tolist() == [0, 2, 2, 1]
    assert ids[0, 0, 0] == 1 and ids[5, 7, 7] == 2 and ids[2, 4, 4] == 3
    assert ids[3, 0, 7] == 0
    np.testing.assert_array_equal(ids[classes == 2] > 0, True)


def test_the_reader_is_asked_for_one_slab_at_a_time_and_the_output_comes_in_slabs():
    mask = _random_mask(3, shape=(30, 12, 14))
    reads: list[tuple[int, int, int]] = []

    def read(z: slice, y: slice, x: slice) -> np.ndarray:
        reads.append((z.stop - z.start, y.stop - y.start, x.stop - x.start))
        return mask[z, y, x]

    writes: list[tuple[int, tuple[int, ...], np.dtype]] = []
    result = np.zeros(mask.shape, np.uint32)

    def write(z0: int, block: np.ndarray) -> None:
        writes.append((z0, block.shape, block.dtype))
        result[z0 : z0 + len(block)] = block

    label_instances(BlockSource(read, mask.shape), write, class_ids=(True,), block_planes=4)
    assert max(planes for planes, _, _ in reads) == 4
    assert len(reads) == 2 * 8  # two passes over 8 slabs, each slab read once per pass
    assert [z0 for z0, _, _ in writes] == list(range(0, 30, 4))
    assert {dtype for _, _, dtype in writes} == {np.dtype(np.uint32)}
    np.testing.assert_array_equal(result, ndimage.label(mask)[0])


def test_instances_stream_into_a_memory_map(tmp_path):
    mask = _random_mask(5, shape=(16, 10, 10))
    out = np.lib.format.open_memmap(tmp_path / "ids.npy", "w+", np.uint32, mask.shape)
    label_instances(mask, out, class_ids=(True,), block_planes=3)
    out.flush()
    stored = np.load(tmp_path / "ids.npy")
    np.testing.assert_array_equal(stored, ndimage.label(mask)[0])


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"connectivity": 4}, "connectivity"),
        ({"min_voxels": -1}, "min_voxels"),
        ({"block_planes": 0}, "block_planes"),
        ({"class_ids": ()}, "class_ids"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, where):
    mask = np.ones((3, 3, 3), bool)
    kwargs = {"class_ids": (True,), **settings}
    with pytest.raises(InputError) as error:
        label_instances(mask, np.zeros((3, 3, 3), np.uint32), **kwargs)
    assert error.value.where == where


def test_a_volume_that_is_not_3d_is_refused_naming_it():
    with pytest.raises(InputError, match="classes"):
        label_instances(np.ones((3, 3), bool), np.zeros((3, 3), np.uint32))


def test_object_boxes_span_slabs():
    ids = np.zeros((10, 6, 6), np.uint32)
    ids[1:9, 2, 3] = 1
    ids[4, 0:5, 1] = 3
    boxes = object_boxes(ids, block_planes=3)
    assert boxes[1].tolist() == [1, 2, 3, 9, 3, 4]
    assert boxes[3].tolist() == [4, 0, 1, 5, 5, 2]
    assert np.all(boxes[2, 3:] <= boxes[2, :3])  # id 2 is absent


def _two_touching_balls(shape=(30, 30, 52)):
    left = _ball(shape, (15, 15, 15), 10)
    right = _ball(shape, (15, 15, 33), 10)
    assert np.any(left & right)  # they overlap: one object for connected components
    return left, right


def test_the_watershed_splits_two_touching_balls_into_two_objects():
    left, right = _two_touching_balls()
    other = _ball(left.shape, (4, 26, 48), 3)  # a third object inside neither box's changes
    ids = np.zeros(left.shape, np.uint32)
    label_instances(left | right | other, ids, class_ids=(True,), block_planes=4)
    assert ids.max() == 2
    before_other = ids[other].copy()
    pair = int(ids[15, 15, 24])  # the neck, shared by both balls

    result = split_touching(ids)
    assert result.objects == 3
    assert result.pieces == {pair: [pair, 3]}
    only_left, only_right = left & ~right, right & ~left
    assert len(np.unique(ids[only_left])) == 1 and len(np.unique(ids[only_right])) == 1
    assert ids[only_left][0] != ids[only_right][0]
    assert set(np.unique(ids[left | right])) == {pair, 3}
    np.testing.assert_array_equal(ids[other], before_other)
    assert np.count_nonzero(ids) == np.count_nonzero(left | right | other)


def test_a_single_ball_is_not_split_and_anisotropic_voxels_are_measured_in_nm():
    shape = (12, 40, 40)
    # A ball in nm at 30 x 10 x 10 nm voxels: 4 planes of radius, 12 pixels across.
    z, y, x = np.ogrid[:12, :40, :40]
    ball = ((z - 6) * 30.0) ** 2 + ((y - 20) * 10.0) ** 2 + ((x - 20) * 10.0) ** 2 <= 120.0**2
    ids = ball.astype(np.uint32)
    result = split_touching(ids, voxel_size=(30.0, 10.0, 10.0), h=20.0)
    assert result.pieces == {} and result.objects == 1
    np.testing.assert_array_equal(ids, ball.astype(np.uint32))
    assert shape == ids.shape


def test_probability_seeds_split_where_the_network_is_unsure():
    left, right = _two_touching_balls()
    ids = (left | right).astype(np.uint32)
    # High probability in each core, low across the neck between them.
    probability = np.zeros(ids.shape, np.float32)
    probability += 0.9 * _ball(ids.shape, (15, 15, 13), 6) + 0.9 * _ball(ids.shape, (15, 15, 35), 6)
    probability = ndimage.gaussian_filter(probability, 2)
    result = split_touching(ids, seeds="probability", probability=probability, h=0.1)
    assert result.objects == 2
    assert ids[15, 15, 8] != ids[15, 15, 40]


def test_an_object_too_large_for_the_memory_budget_stays_whole_and_is_reported():
    left, right = _two_touching_balls()
    ids = (left | right).astype(np.uint32)
    result = split_touching(ids, memory_budget=1000)
    assert result.too_large == [1] and result.objects == 1
    np.testing.assert_array_equal(ids, (left | right).astype(np.uint32))


def test_split_settings_are_checked():
    ids = np.ones((3, 3, 3), np.uint32)
    with pytest.raises(InputError) as error:
        split_touching(ids, seeds="probability")
    assert error.value.where == "probability"
    with pytest.raises(InputError) as error:
        split_touching(ids, h=0)
    assert error.value.where == "h"
