"""A simulated annotator: the strokes a person paints first, and the corrections after.

Scribbles are made from ground truth the way a person paints them. ``first_strokes`` is what a
person paints on a fresh slice: ``strokes`` (a short stroke inside each of 8 objects and 8
strokes across the background; for a thin class such as membranes, 8 short pieces along it),
``grid`` (rows and columns every 64 pixels, labelled from the ground truth) or ``dense`` (the
whole slice). :func:`correction_strokes` is what a person paints after looking at a
prediction: one stroke along the middle of each of the largest wrong regions (false positives
and false negatives), labelled with the true class, as in the iterative-correction protocols
of interactive-segmentation benchmarks. Labels are class ids, 255 = unpainted.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

UNPAINTED = 255
# A wrong region smaller than this (pixels) is not worth a stroke.
_SMALLEST_REGION = 30
# A correction stroke reaches this far (pixels) from the middle of its region, each way.
_STROKE_REACH = 40
# Half-width of a correction stroke (pixels): a 5-pixel brush.
_BRUSH = 2


def first_strokes(truth: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """Painted labels (255 = unpainted) for one slice of class ids (0 and 1)."""
    if style == "dense":
        return truth.astype(np.uint8)
    painted = np.full(truth.shape, UNPAINTED, np.uint8)
    if style == "grid":
        for offset in (0, 1):
            painted[offset::64, :] = truth[offset::64, :]
            painted[:, offset::64] = truth[:, offset::64]
        return painted
    for class_id, count in ((1, 8), (0, 8)):
        mask = truth == class_id
        inside = ndimage.binary_erosion(mask, iterations=4)
        if inside.sum() < 0.25 * mask.sum():
            # a thin class (membranes): short pieces painted along it, where it is
            ys, xs = np.nonzero(mask)
            for point in rng.permutation(ys.size)[:count] if ys.size else []:
                near = (ys - ys[point]) ** 2 + (xs - xs[point]) ** 2 <= 15**2
                painted[ys[near], xs[near]] = class_id
            continue
        objects, found = ndimage.label(inside)
        if class_id and found:  # objects (mitochondria, cells): one stroke in each of a few
            chosen = rng.permutation(found)[:count] + 1
            places = [np.nonzero(objects == obj) for obj in chosen]
        else:  # the background: strokes at a few places across it
            ys, xs = np.nonzero(inside)
            places = [(ys, xs)] * count if ys.size else []
        for ys, xs in places:
            centre = rng.integers(0, ys.size)
            near = (ys - ys[centre]) ** 2 + (xs - xs[centre]) ** 2 <= 30**2
            # a stroke: a band 5 pixels wide through the point, inside the object
            band = np.abs((ys - ys[centre]) - (xs - xs[centre]) * rng.uniform(-1, 1)) <= 2.5
            keep = near & band
            painted[ys[keep], xs[keep]] = class_id
    return painted


def _stroke_in(region: np.ndarray) -> np.ndarray:
    """A stroke along the middle of one region: its skeleton near its deepest point, widened."""
    depth = ndimage.distance_transform_edt(region)
    centre = np.unravel_index(int(depth.argmax()), region.shape)
    spine = skeletonize(region)
    if not spine.any():
        spine = np.zeros_like(region)
        spine[centre] = True
    rows, columns = np.ogrid[: region.shape[0], : region.shape[1]]
    near = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= _STROKE_REACH**2
    stroke = ndimage.binary_dilation(spine & near, iterations=_BRUSH)
    return stroke & region


def correction_strokes(
    truth: np.ndarray, predicted: np.ndarray, painted: np.ndarray, *, count: int
) -> tuple[np.ndarray, int]:
    """Paint up to ``count`` strokes into the largest wrong regions of one slice.

    :param truth: true class ids of the slice.
    :param predicted: the class ids the person sees (the live layer).
    :param painted: the slice's painted labels so far (255 = unpainted); not changed.
    :returns: the new painted labels and the number of strokes added.
    """
    wrong = (predicted != truth) & (painted == UNPAINTED)
    regions = []
    for class_id in np.unique(truth[wrong]):
        labelled, found = ndimage.label(wrong & (truth == class_id))
        sizes = ndimage.sum_labels(np.ones_like(labelled), labelled, np.arange(1, found + 1))
        regions += [
            (int(size), int(class_id), index + 1, labelled) for index, size in enumerate(sizes)
        ]
    regions.sort(key=lambda item: -item[0])
    result, added = painted.copy(), 0
    for size, class_id, index, labelled in regions[:count]:
        if size < _SMALLEST_REGION:
            break
        stroke = _stroke_in(labelled == index)
        if stroke.any():
            result[stroke] = class_id
            added += 1
    return result, added
