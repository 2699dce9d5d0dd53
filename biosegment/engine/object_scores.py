"""Score predicted objects against true objects: object F1 at IoU 0.5 and MitoEM's AP-75.

Pixel scores say how many voxels are right; a lab counting mitochondria needs to know how many
objects are right. Both volumes here are instance volumes (ids, 0 for background). Where the
ground truth has classes only, its objects are the connected components of the class's mask
(:func:`~biosegment.engine.instances.label_instances` on the truth), as the MitoEM challenge
does for semantic ground truth.

:func:`count_overlaps` reads both volumes slab by slab and keeps only each object's size and
the voxel counts of each (predicted, true) pair that overlaps, from which every IoU follows.

- **Object precision, recall and F1** (:func:`match_objects`): predicted and true objects are
  matched one to one, greedily from the highest IoU down, pairs below the threshold (0.5)
  never matching. Above 0.5 the matching is unique anyway (two disjoint objects cannot both
  cover more than half of a third), so greedy equals the optimal (Hungarian) matching there.
  Precision = matches / predicted objects, recall = matches / true objects,
  F1 = 2 matches / (predicted + true); NaN where the denominator is zero.
- **AP at IoU 0.75 as MitoEM defines it** (:func:`average_precision`): predicted objects are
  ranked by a confidence score (MitoEM's default, used here too, is the object's size in
  voxels, larger first; ties go to the smaller id). Each one is a true positive when its best
  IoU with any true object reaches the threshold. Precision and recall are taken after every
  rank, precision is replaced by its running maximum from the end (the precision envelope),
  and AP is the mean of that envelope at the 101 recall levels 0, 0.01, ..., 1 (the first rank
  reaching each level; 0 where recall never reaches it): COCO's interpolated AP, which the
  MitoEM evaluation adopts for 3-D objects. NaN when there are no true objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from biosegment.engine.volume_blocks import DEFAULT_BLOCK_PLANES, BlockSource, z_ranges
from biosegment.errors import InputError

__all__ = [
    "Overlaps",
    "ObjectScores",
    "count_overlaps",
    "match_objects",
    "average_precision",
    "object_scores",
    "MATCH_IOU",
    "AP_IOU",
]

#: IoU at which a predicted object matches a true one for precision, recall and F1.
MATCH_IOU = 0.5
#: IoU of MitoEM's headline score, AP-75.
AP_IOU = 0.75
# COCO's recall levels: 0, 0.01, ..., 1.
_RECALL_LEVELS = np.linspace(0.0, 1.0, 101)
# Pairs are counted as one 64-bit key per voxel: ids must fit in 32 bits (uint32 volumes).
_LARGEST_ID = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Overlaps:
    """Object sizes and overlaps of a prediction and a truth.

    ``predicted_voxels[i]`` and ``true_voxels[j]`` are object sizes by id (0 where an id is
    absent); ``pairs`` holds (predicted id, true id) of every overlapping pair and
    ``intersection`` its shared voxels.
    """

    predicted_voxels: np.ndarray
    true_voxels: np.ndarray
    pairs: np.ndarray
    intersection: np.ndarray

    @property
    def predicted_ids(self) -> np.ndarray:
        return np.flatnonzero(self.predicted_voxels)

    @property
    def true_ids(self) -> np.ndarray:
        return np.flatnonzero(self.true_voxels)

    @property
    def iou(self) -> np.ndarray:
        """The IoU of each pair in :attr:`pairs`."""
        union = (
            self.predicted_voxels[self.pairs[:, 0]]
            + self.true_voxels[self.pairs[:, 1]]
            - self.intersection
        )
        return self.intersection / np.maximum(union, 1)


def _add_counts(total: np.ndarray, ids: np.ndarray) -> np.ndarray:
    counts = np.bincount(ids.ravel())
    if len(counts) > len(total):
        total = np.concatenate([total, np.zeros(len(counts) - len(total), np.int64)])
    total[: len(counts)] += counts
    return total


def count_overlaps(
    predicted: Any, truth: Any, *, block_planes: int = DEFAULT_BLOCK_PLANES
) -> Overlaps:
    """Sizes and pairwise overlaps of two instance volumes, read one slab at a time.

    :param predicted: predicted instance ids (z, y, x): an array-like, a volume reader or a
        :class:`~biosegment.engine.volume_blocks.BlockSource`.
    :param truth: true instance ids of the same shape.
    :raises InputError: when the shapes differ or ids are not integers.
    """
    left = BlockSource.of(predicted, name="prediction")
    right = BlockSource.of(truth, name="truth")
    right.check_shape(left.shape)
    predicted_voxels = np.zeros(1, np.int64)
    true_voxels = np.zeros(1, np.int64)
    keys = np.zeros(0, np.uint64)
    counts = np.zeros(0, np.int64)
    for z0, z1 in z_ranges(left.shape[0], block_planes):
        p, t = left.planes(z0, z1), right.planes(z0, z1)
        for name, ids in (("prediction", p), ("truth", t)):
            if ids.dtype.kind not in "ui" or (
                ids.size and (int(ids.min()) < 0 or int(ids.max()) > _LARGEST_ID)
            ):
                raise InputError(
                    f"instance ids must be integers from 0 to {_LARGEST_ID}", where=name
                )
        predicted_voxels = _add_counts(predicted_voxels, p)
        true_voxels = _add_counts(true_voxels, t)
        both = (p != 0) & (t != 0)
        slab_keys = (p[both].astype(np.uint64) << np.uint64(32)) | t[both].astype(np.uint64)
        new_keys, new_counts = np.unique(slab_keys, return_counts=True)
        merged, where = np.unique(np.concatenate([keys, new_keys]), return_inverse=True)
        counts = np.bincount(where, np.concatenate([counts, new_counts])).astype(np.int64)
        keys = merged
    pairs = np.stack([keys >> np.uint64(32), keys & np.uint64(0xFFFFFFFF)], axis=1)
    predicted_voxels[0] = true_voxels[0] = 0
    return Overlaps(predicted_voxels, true_voxels, pairs.astype(np.int64), counts)


def match_objects(overlaps: Overlaps, *, iou_threshold: float = MATCH_IOU) -> np.ndarray:
    """One-to-one matches at IoU >= ``iou_threshold``, greedily from the best IoU down.

    :returns: ``(n, 2)`` int64 of (predicted id, true id).
    """
    iou = overlaps.iou
    order = np.lexsort((overlaps.pairs[:, 1], overlaps.pairs[:, 0], -iou))
    taken_predicted: set[int] = set()
    taken_true: set[int] = set()
    matches = []
    for row in order:
        if iou[row] < iou_threshold:
            break
        p, t = (int(v) for v in overlaps.pairs[row])
        if p in taken_predicted or t in taken_true:
            continue
        taken_predicted.add(p)
        taken_true.add(t)
        matches.append((p, t))
    return np.asarray(matches, np.int64).reshape(-1, 2)


def average_precision(
    overlaps: Overlaps,
    *,
    iou_threshold: float = AP_IOU,
    confidence: np.ndarray | None = None,
) -> float:
    """MitoEM's average precision at ``iou_threshold`` (see the module's notes).

    :param confidence: a score per predicted id (index = id); default: the object's size.
    """
    true_count = len(overlaps.true_ids)
    if true_count == 0:
        return math.nan
    predicted = overlaps.predicted_ids
    if len(predicted) == 0:
        return 0.0
    score = overlaps.predicted_voxels if confidence is None else np.asarray(confidence, float)
    ranked = predicted[np.argsort(-score[predicted], kind="stable")]
    best = np.zeros(len(overlaps.predicted_voxels))
    np.maximum.at(best, overlaps.pairs[:, 0], overlaps.iou)
    hits = best[ranked] >= iou_threshold
    true_positives = np.cumsum(hits)
    recall = true_positives / true_count
    precision = true_positives / np.arange(1, len(ranked) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, _RECALL_LEVELS - 1e-12, side="left")
    sampled = np.where(first < len(ranked), envelope[np.minimum(first, len(ranked) - 1)], 0.0)
    return float(sampled.mean())


@dataclass(frozen=True, slots=True)
class ObjectScores:
    """Object-level scores of a prediction against the truth."""

    predicted_objects: int
    true_objects: int
    matched: int
    precision: float
    recall: float
    f1: float
    ap75: float

    def as_dict(self) -> dict:
        return {
            "predicted_objects": self.predicted_objects,
            "true_objects": self.true_objects,
            "matched": self.matched,
            "object_precision": self.precision,
            "object_recall": self.recall,
            "object_f1": self.f1,
            "ap75": self.ap75,
        }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def object_scores(
    predicted: Any, truth: Any, *, block_planes: int = DEFAULT_BLOCK_PLANES
) -> ObjectScores:
    """Object precision, recall and F1 at IoU 0.5, and AP-75, of two instance volumes."""
    overlaps = count_overlaps(predicted, truth, block_planes=block_planes)
    matched = len(match_objects(overlaps))
    predicted_count = len(overlaps.predicted_ids)
    true_count = len(overlaps.true_ids)
    return ObjectScores(
        predicted_objects=predicted_count,
        true_objects=true_count,
        matched=matched,
        precision=_ratio(matched, predicted_count),
        recall=_ratio(matched, true_count),
        f1=_ratio(2 * matched, predicted_count + true_count),
        ap75=average_precision(overlaps),
    )
