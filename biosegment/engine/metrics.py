"""Score a segmentation against ground truth or sparse annotations.

Every score starts from a confusion matrix over the labelled pixels only: pixels whose truth is
the ignore label (255, "unlabeled") never count, so the same functions score dense ground truth
and a few painted scribbles. From that matrix come per-class IoU and Dice, pixel accuracy and
pixel error. Membrane-type outputs (a boundary class that separates objects, as in ISBI 2012)
are also scored as instance segmentations: the connected regions of everything that is not
membrane are compared with the adapted Rand error and the variation of information, slice by
slice, the way the ISBI challenge scored them.

Conventions for empty cases, chosen so that averages stay honest:

- IoU and Dice of a class that is absent from both truth and prediction (among labelled pixels)
  are NaN: there is nothing to score, and a 1.0 would flatter a model that never met the class.
  Means use ``nanmean``, so such classes drop out of them. A class present on one side only
  scores 0.0.
- Pixel accuracy and pixel error with no labelled pixels at all are NaN.
- Rand error and variation of information skip slices whose truth holds no labelled
  non-membrane pixel; if every slice is skipped they are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from skimage.measure import label as connected_regions
from skimage.metrics import adapted_rand_error, variation_of_information

from biosegment.errors import InputError

__all__ = [
    "IGNORE_LABEL",
    "confusion_matrix",
    "iou_per_class",
    "dice_per_class",
    "pixel_accuracy",
    "pixel_error",
    "boundary_scores",
    "segmentation_scores",
]

#: Class id of pixels nobody labelled; excluded from every loss and metric.
IGNORE_LABEL = 255


def _check_same_shape(truth: np.ndarray, prediction: np.ndarray) -> None:
    if truth.shape != prediction.shape:
        raise InputError(
            f"truth has shape {truth.shape} but prediction has shape {prediction.shape}",
            where="prediction",
        )


def confusion_matrix(
    truth: np.ndarray, prediction: np.ndarray, *, num_classes: int, ignore_label: int = IGNORE_LABEL
) -> np.ndarray:
    """Count labelled pixels by (true class, predicted class).

    :param truth: integer class ids of any shape; ``ignore_label`` marks unlabelled pixels.
    :param prediction: integer class ids, same shape as ``truth``.
    :param num_classes: number of classes; ids must lie in ``0 .. num_classes - 1``.
    :param ignore_label: truth value whose pixels are left out.
    :returns: an ``int64`` array of shape ``(num_classes, num_classes)``; row = truth,
        column = prediction.
    :raises InputError: when shapes differ or a labelled id falls outside the class range.
    """
    truth = np.asarray(truth)
    prediction = np.asarray(prediction)
    _check_same_shape(truth, prediction)
    labelled = truth != ignore_label
    true_ids = truth[labelled].astype(np.int64)
    predicted_ids = prediction[labelled].astype(np.int64)
    for name, ids in (("truth", true_ids), ("prediction", predicted_ids)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise InputError(f"class id {int(ids.max())} outside 0..{num_classes - 1}", where=name)
    # One bincount over combined indices is much faster than a Python loop over classes.
    combined = true_ids * num_classes + predicted_ids
    counts = np.bincount(combined, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _overlaps(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    truth_total = confusion.sum(axis=1)
    predicted_total = confusion.sum(axis=0)
    return true_positive, truth_total, predicted_total


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """Intersection over union of each class; NaN where the class is absent on both sides.

    :param confusion: a matrix from :func:`confusion_matrix`.
    :returns: ``float64`` array with one IoU per class.
    """
    true_positive, truth_total, predicted_total = _overlaps(confusion)
    union = truth_total + predicted_total - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def dice_per_class(confusion: np.ndarray) -> np.ndarray:
    """Dice coefficient (F1) of each class; NaN where the class is absent on both sides.

    :param confusion: a matrix from :func:`confusion_matrix`.
    :returns: ``float64`` array with one Dice score per class.
    """
    true_positive, truth_total, predicted_total = _overlaps(confusion)
    total = truth_total + predicted_total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * true_positive / total, np.nan)


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of labelled pixels whose class is right; NaN with no labelled pixels."""
    confusion = np.asarray(confusion)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else math.nan


def pixel_error(confusion: np.ndarray) -> float:
    """Fraction of labelled pixels whose class is wrong (1 - accuracy); NaN when empty."""
    accuracy = pixel_accuracy(confusion)
    return math.nan if math.isnan(accuracy) else 1.0 - accuracy


def _as_slices(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        return array[np.newaxis]
    if array.ndim == 3:
        return array
    raise InputError(
        f"expected a 2-D slice or a 3-D stack, got {array.ndim} dimensions", where="truth"
    )


def boundary_scores(
    truth: np.ndarray,
    prediction: np.ndarray,
    *,
    boundary_class: int = 1,
    ignore_label: int = IGNORE_LABEL,
) -> dict[str, float]:
    """Instance scores of a membrane-type segmentation: adapted Rand error and VI.

    Each slice's non-membrane pixels are split into 4-connected regions, in the truth and in
    the prediction, and the two partitions are compared with scikit-image's
    ``adapted_rand_error`` and ``variation_of_information``. Pixels where the truth is
    membrane or unlabelled are left out (scikit-image's ``ignore_labels``), as in the ISBI
    2012 foreground-restricted scoring; predicted membrane on true cell interior stays in
    and counts as one more region, so a thick predicted boundary is penalised.

    :param truth: class ids, ``(y, x)`` or ``(z, y, x)``; ``ignore_label`` = unlabelled.
    :param prediction: class ids, same shape.
    :param boundary_class: the class id of the membrane.
    :param ignore_label: truth value of unlabelled pixels.
    :returns: ``rand_error``, ``vi_split``, ``vi_merge`` and ``vi`` (split + merge, in
        bits), each the mean over scored slices, and ``slices_scored``. Scores are NaN when
        no slice could be scored.
    """
    # Imported here: scikit-image costs a second to import and most callers never need it.

    truth_slices = _as_slices(truth)
    prediction_slices = _as_slices(prediction)
    _check_same_shape(truth_slices, prediction_slices)
    rows = []
    for true_slice, predicted_slice in zip(truth_slices, prediction_slices):
        true_interior = (true_slice != boundary_class) & (true_slice != ignore_label)
        if not true_interior.any():
            continue
        true_regions = connected_regions(true_interior, connectivity=1)
        predicted_regions = connected_regions(predicted_slice != boundary_class, connectivity=1)
        # Only the error is kept: scikit-image's precision and recall outputs are named the
        # other way round from its own docstring, and the error is symmetric in them.
        error = adapted_rand_error(true_regions, predicted_regions, ignore_labels=(0,))[0]
        # variation_of_information returns (H(predicted | true), H(true | predicted)): the
        # first grows with false splits (over-segmentation), the second with false merges.
        split, merge = variation_of_information(true_regions, predicted_regions, ignore_labels=(0,))
        rows.append((error, split, merge))
    if not rows:
        nan = math.nan
        return {"rand_error": nan, "vi_split": nan, "vi_merge": nan, "vi": nan, "slices_scored": 0}
    means = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
    return {
        "rand_error": float(means[0]),
        "vi_split": float(means[1]),
        "vi_merge": float(means[2]),
        "vi": float(means[1] + means[2]),
        "slices_scored": len(rows),
    }


def _nanmean_or_nan(values: np.ndarray) -> float:
    """Mean of the defined values; NaN (without numpy's warning) when none is defined."""
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if defined.size else math.nan


def _plain(value: float) -> float | None:
    """JSON has no NaN: undefined scores travel as None."""
    return None if math.isnan(value) else float(value)


def segmentation_scores(
    truth: np.ndarray,
    prediction: np.ndarray,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    boundary_class: int | None = None,
    ignore_label: int = IGNORE_LABEL,
) -> dict:
    """All scores of one prediction as a JSON-ready dictionary (NaN written as ``None``).

    :param truth: class ids, any shape; ``ignore_label`` = unlabelled.
    :param prediction: class ids, same shape.
    :param num_classes: number of classes of the model.
    :param class_names: optional names, used as keys of the per-class tables.
    :param boundary_class: when given, also compute :func:`boundary_scores` for this class.
        Only meaningful for densely labelled slices, so callers pass it for ground truth.
    :param ignore_label: truth value of unlabelled pixels.
    :returns: ``pixel_accuracy``, ``pixel_error``, ``iou`` and ``dice`` (class name -> score),
        ``mean_iou`` and ``mean_dice`` (over classes other than 0, or over all classes when
        there is only one), ``labelled_pixels``, and the boundary scores when asked for.
    """
    confusion = confusion_matrix(
        truth, prediction, num_classes=num_classes, ignore_label=ignore_label
    )
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise InputError(f"{len(names)} class names for {num_classes} classes", where="class_names")
    iou = iou_per_class(confusion)
    dice = dice_per_class(confusion)
    # Background dominates most EM volumes, so the means that guide model choice leave it out.
    foreground = slice(1, None) if num_classes > 1 else slice(None)
    mean_iou = _nanmean_or_nan(iou[foreground])
    mean_dice = _nanmean_or_nan(dice[foreground])
    scores = {
        "labelled_pixels": int(confusion.sum()),
        "pixel_accuracy": _plain(pixel_accuracy(confusion)),
        "pixel_error": _plain(pixel_error(confusion)),
        "iou": {name: _plain(value) for name, value in zip(names, iou)},
        "dice": {name: _plain(value) for name, value in zip(names, dice)},
        "mean_iou": _plain(mean_iou),
        "mean_dice": _plain(mean_dice),
    }
    if boundary_class is not None:
        boundary = boundary_scores(
            truth, prediction, boundary_class=boundary_class, ignore_label=ignore_label
        )
        scores.update(
            {
                key: (value if key == "slices_scored" else _plain(value))
                for key, value in boundary.items()
            }
        )
    return scores
