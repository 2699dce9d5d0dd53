"""Object scores on cases small enough to count by hand: F1 at IoU 0.5 and MitoEM's AP-75."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biosegment.engine.instances import label_instances
from biosegment.engine.object_scores import (
    average_precision,
    count_overlaps,
    match_objects,
    object_scores,
)
from biosegment.engine.volume_blocks import BlockSource
from biosegment.errors import InputError


def _bar(volume: np.ndarray, object_id: int, z: int, x0: int, x1: int) -> None:
    """Object ``object_id`` as the voxels x0..x1-1 of row 0 in plane ``z``."""
    volume[z, 0, x0:x1] = object_id


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Five true objects, five predicted ones, one plane each (10 voxels long):

    - true 1 / predicted 1: identical (IoU 1);
    - true 2 / predicted 2: predicted covers 8 of 10 (IoU 0.8);
    - true 3 / predicted 3: predicted covers 6 of 10 (IoU 0.6);
    - true 4 / predicted 4: predicted covers 4 of 10 (IoU 0.4, no match);
    - true 5: missed; predicted 5: in empty space.
    """
    truth = np.zeros((6, 1, 12), np.uint32)
    predicted = np.zeros_like(truth)
    for i in range(1, 6):
        _bar(truth, i, i - 1, 0, 10)
    _bar(predicted, 1, 0, 0, 10)
    _bar(predicted, 2, 1, 0, 8)
    _bar(predicted, 3, 2, 0, 6)
    _bar(predicted, 4, 3, 0, 4)
    _bar(predicted, 5, 5, 0, 3)
    return predicted, truth


def test_overlaps_give_each_pair_its_iou():
    predicted, truth = _scene()
    overlaps = count_overlaps(predicted, truth, block_planes=2)
    iou = dict(zip(map(tuple, overlaps.pairs.tolist()), overlaps.iou.tolist(), strict=True))
    assert iou == pytest.approx({(1, 1): 1.0, (2, 2): 0.8, (3, 3): 0.6, (4, 4): 0.4})
    assert overlaps.predicted_voxels.tolist() == [0, 10, 8, 6, 4, 3]


def test_precision_recall_and_f1_at_iou_half_match_the_hand_count():
    predicted, truth = _scene()
    scores = object_scores(predicted, truth, block_planes=1)
    # 3 matches (IoU 1, 0.8, 0.6) of 5 predicted and 5 true objects.
    assert (scores.matched, scores.predicted_objects, scores.true_objects) == (3, 5, 5)
    assert scores.precision == pytest.approx(3 / 5)
    assert scores.recall == pytest.approx(3 / 5)
    assert scores.f1 == pytest.approx(2 * 3 / 10)


def test_ap75_follows_mitoem_ranking_by_size_and_the_101_recall_levels():
    predicted, truth = _scene()
    # Ranked by size: 1 (10, TP), 2 (8, TP), 3 (6, FP at 0.75), 4 (4, FP), 5 (3, FP).
    # Recall after each: 1/5, 2/5, 2/5, 2/5, 2/5; precision envelope 1, 1, ...: levels 0..0.40
    # (41 of 101) reach precision 1, the rest are never reached.
    scores = object_scores(predicted, truth)
    assert scores.ap75 == pytest.approx(41 / 101)


def test_ap75_with_a_false_positive_ranked_between_hits():
    truth = np.zeros((3, 1, 16), np.uint32)
    predicted = np.zeros_like(truth)
    for i in range(1, 4):
        _bar(truth, i, i - 1, 0, 10)
    _bar(predicted, 1, 0, 0, 12)  # 12 voxels, IoU 10/12: a hit, ranked first
    _bar(predicted, 2, 1, 4, 15)  # 11 voxels, IoU 6/15: a miss, second
    _bar(predicted, 3, 2, 1, 10)  # 9 voxels, IoU 9/10: a hit, third
    overlaps = count_overlaps(predicted, truth)
    # Precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3: envelope 1, 2/3, 2/3.
    # Levels 0..0.33 (34) get 1, 0.34..0.66 (33) get 2/3, 0.67..1 get 0.
    assert average_precision(overlaps) == pytest.approx((34 + 33 * 2 / 3) / 101)


def test_confidence_scores_change_the_ranking():
    predicted, truth = _scene()
    overlaps = count_overlaps(predicted, truth)
    # The empty-space prediction ranked first: precision 0 until the first hit.
    confidence = np.array([0, 5, 4, 3, 2, 9], float)
    # Recall 0, 1/5, 2/5 with precision 0, 1/2, 2/3: envelope 2/3 at every level up to 0.4.
    assert average_precision(overlaps, confidence=confidence) == pytest.approx(41 / 101 * 2 / 3)


def test_matching_is_one_to_one_even_at_an_iou_of_exactly_one_half():
    truth = np.zeros((1, 1, 8), np.uint32)
    truth[0, 0, 0:4] = 1
    predicted = np.zeros_like(truth)
    predicted[0, 0, 0:2] = 1  # IoU 0.5 with true 1
    predicted[0, 0, 2:4] = 2  # IoU 0.5 with true 1 too
    matches = match_objects(count_overlaps(predicted, truth))
    assert len(matches) == 1


def test_truth_with_classes_only_is_scored_through_its_connected_components():
    truth_classes = np.zeros((4, 10, 10), np.uint8)
    truth_classes[0:2, 1:4, 1:4] = 1
    truth_classes[2:4, 6:9, 6:9] = 1
    truth_ids = np.zeros(truth_classes.shape, np.uint32)
    label_instances(truth_classes, truth_ids, block_planes=1)
    predicted = np.zeros_like(truth_ids)
    predicted[0:2, 1:4, 1:4] = 9
    scores = object_scores(predicted, truth_ids)
    assert (scores.true_objects, scores.matched) == (2, 1)
    assert scores.recall == pytest.approx(0.5) and scores.precision == pytest.approx(1.0)


def test_empty_cases_follow_the_nan_convention():
    empty = np.zeros((2, 2, 2), np.uint32)
    scores = object_scores(empty, empty)
    assert math.isnan(scores.precision) and math.isnan(scores.f1) and math.isnan(scores.ap75)
    some = empty.copy()
    some[0, 0, 0] = 1
    missed = object_scores(empty, some)
    assert missed.recall == 0.0 and missed.ap75 == 0.0 and math.isnan(missed.precision)


def test_overlaps_are_counted_one_slab_at_a_time():
    predicted, truth = _scene()
    reads: list[int] = []

    def reader(volume):
        def read(z, y, x):
            reads.append(z.stop - z.start)
            return volume[z, y, x]

        return BlockSource(read, volume.shape)

    count_overlaps(reader(predicted), reader(truth), block_planes=2)
    assert max(reads) == 2 and len(reads) == 2 * 3


def test_shapes_and_id_types_are_checked():
    with pytest.raises(InputError) as error:
        count_overlaps(np.zeros((2, 2, 2), np.uint32), np.zeros((2, 2, 3), np.uint32))
    assert error.value.where == "truth"
    with pytest.raises(InputError) as error:
        count_overlaps(np.zeros((2, 2, 2), np.float32), np.zeros((2, 2, 2), np.uint32))
    assert error.value.where == "prediction"
