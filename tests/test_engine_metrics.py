"""Segmentation scores against cases small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biosegment.engine.metrics import (
    boundary_scores,
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    pixel_accuracy,
    pixel_error,
    segmentation_scores,
)
from biosegment.errors import InputError


def test_confusion_matrix_counts_truth_rows_and_prediction_columns():
    truth = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    prediction = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    confusion = confusion_matrix(truth, prediction, num_classes=2)
    assert confusion.tolist() == [[1, 1], [0, 2]]


def test_iou_dice_accuracy_match_hand_computation():
    truth = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    prediction = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    confusion = confusion_matrix(truth, prediction, num_classes=2)
    # Class 0: TP 1, FN 1, FP 0 -> IoU 1/2, Dice 2/3. Class 1: TP 2, FP 1 -> IoU 2/3, Dice 4/5.
    assert iou_per_class(confusion) == pytest.approx([1 / 2, 2 / 3])
    assert dice_per_class(confusion) == pytest.approx([2 / 3, 4 / 5])
    assert pixel_accuracy(confusion) == pytest.approx(3 / 4)
    assert pixel_error(confusion) == pytest.approx(1 / 4)


def test_ignore_label_pixels_do_not_count():
    truth = np.array([[0, 255], [1, 255]], dtype=np.uint8)
    # The prediction is wrong exactly where the truth is unlabelled.
    prediction = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    confusion = confusion_matrix(truth, prediction, num_classes=2)
    assert confusion.sum() == 2
    assert pixel_accuracy(confusion) == 1.0
    assert iou_per_class(confusion).tolist() == [1.0, 1.0]


def test_class_absent_on_both_sides_is_nan_and_one_sided_is_zero():
    truth = np.array([0, 0, 1, 1], dtype=np.uint8)
    prediction = np.array([0, 2, 1, 1], dtype=np.uint8)
    confusion = confusion_matrix(truth, prediction, num_classes=4)
    iou = iou_per_class(confusion)
    dice = dice_per_class(confusion)
    assert iou[2] == 0.0 and dice[2] == 0.0  # predicted but never true
    assert math.isnan(iou[3]) and math.isnan(dice[3])  # nowhere at all


def test_no_labelled_pixels_gives_nan_accuracy_and_none_in_scores():
    truth = np.full((3, 3), 255, dtype=np.uint8)
    prediction = np.zeros((3, 3), dtype=np.uint8)
    confusion = confusion_matrix(truth, prediction, num_classes=2)
    assert confusion.sum() == 0
    assert math.isnan(pixel_accuracy(confusion))
    assert math.isnan(pixel_error(confusion))
    scores = segmentation_scores(truth, prediction, num_classes=2)
    assert scores["pixel_accuracy"] is None
    assert scores["mean_iou"] is None
    assert scores["labelled_pixels"] == 0


def test_tiny_single_pixel_input():
    confusion = confusion_matrix(np.array([1]), np.array([1]), num_classes=2)
    assert pixel_accuracy(confusion) == 1.0
    assert math.isnan(iou_per_class(confusion)[0])
    assert iou_per_class(confusion)[1] == 1.0


def test_out_of_range_class_and_shape_mismatch_are_input_errors():
    with pytest.raises(InputError, match="prediction"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), num_classes=2)
    with pytest.raises(InputError, match="truth"):
        confusion_matrix(np.array([0, 7]), np.array([0, 1]), num_classes=2)
    with pytest.raises(InputError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), num_classes=2)


def test_segmentation_scores_names_classes_and_leaves_background_out_of_means():
    truth = np.array([[0, 0, 1, 2]], dtype=np.uint8)
    prediction = np.array([[0, 1, 1, 2]], dtype=np.uint8)
    scores = segmentation_scores(
        truth, prediction, num_classes=3, class_names=["background", "mito", "er"]
    )
    assert scores["iou"] == pytest.approx({"background": 0.5, "mito": 0.5, "er": 1.0})
    assert scores["mean_iou"] == pytest.approx(0.75)
    assert scores["mean_dice"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert scores["pixel_error"] == pytest.approx(0.25)
    assert "rand_error" not in scores


def _two_cells() -> np.ndarray:
    # Two cell interiors (0) separated by one membrane row (1).
    return np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=np.uint8)


def test_boundary_scores_perfect_prediction_scores_zero():
    truth = _two_cells()
    scores = boundary_scores(truth, truth.copy())
    assert scores["rand_error"] == pytest.approx(0.0)
    assert scores["vi"] == pytest.approx(0.0)
    assert scores["slices_scored"] == 1


def test_boundary_scores_of_a_merge_match_hand_computation():
    truth = _two_cells()
    merged = np.zeros_like(truth)  # the membrane was missed: one region of 12 pixels
    scores = boundary_scores(truth, merged)
    # Over the 8 scored pixels: sum p_ij^2 - n = 32 - 8, sum a_i^2 - n = 24, sum b_j^2 - n = 56.
    # Rand precision 24/56 = 3/7, recall 24/24 = 1, F = 0.6 -> adapted Rand error 0.4.
    assert scores["rand_error"] == pytest.approx(0.4)
    # Two equal true regions in one predicted region: one bit of merge, no split.
    assert scores["vi_merge"] == pytest.approx(1.0)
    assert scores["vi_split"] == pytest.approx(0.0)


def test_boundary_scores_of_a_split_are_split_not_merge():
    truth = np.zeros((3, 4), dtype=np.uint8)  # one cell
    split = truth.copy()
    split[:, 2] = 1  # a false membrane cuts it into two 3x2 halves
    scores = boundary_scores(truth, split)
    assert scores["vi_split"] > 0.9
    assert scores["vi_merge"] == pytest.approx(0.0)
    assert scores["rand_error"] > 0.0


def test_boundary_scores_skip_slices_without_labelled_interior():
    truth = np.stack([_two_cells(), np.full((3, 4), 255, np.uint8), np.ones((3, 4), np.uint8)])
    scores = boundary_scores(truth, truth.copy())
    assert scores["slices_scored"] == 1
    empty = boundary_scores(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8))
    assert empty["slices_scored"] == 0 and math.isnan(empty["rand_error"])


def test_segmentation_scores_include_boundary_scores_when_asked():
    truth = _two_cells()
    scores = segmentation_scores(
        truth,
        np.zeros_like(truth),
        num_classes=2,
        class_names=["background", "membrane"],
        boundary_class=1,
    )
    assert scores["rand_error"] == pytest.approx(0.4)
    assert scores["dice"]["membrane"] == 0.0
    assert scores["pixel_error"] == pytest.approx(4 / 12)
