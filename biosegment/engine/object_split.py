"""Split objects that touch into separate objects with a seeded watershed, one object at a time.

Connected components merge two mitochondria that touch into one object. The usual remedy (the
recipe of empanada and plantseg) floods each object from seeds placed in its "cores": the
maxima of its distance transform (how deep inside the object a voxel lies; two touching
spheres have two maxima and a neck between them), or the places the network is surest of the
class. :func:`split_touching` does that per object, on the object's bounding box plus a margin,
so memory follows the largest object and not the volume; an object whose box does not fit the
memory budget is left whole and reported.

Parameters, and why:

- ``seeds="distance"``: seeds are the h-maxima of the Euclidean distance transform (in nm when a
  voxel size is given, so anisotropic stacks are measured fairly): a maximum counts only if it
  rises at least ``h`` above the saddle that joins it to a higher one. Raise ``h`` to split
  less (bumpy surfaces make shallow maxima); a neck narrower than the two cores by ``h`` or
  more is cut. The object is flooded on the negated distance.
- ``seeds="probability"``: seeds are the h-maxima of the class probability (0..1, or 0..255 as
  BioSegment stores it, with ``h`` in the same unit), and the object is flooded on the negated
  probability, so the cut follows the network's least confident voxels.
- ``min_seed_distance``: h-maxima closer than this (voxels) to a larger one are dropped, for
  noisy maps that give several maxima inside one core.
- ``connectivity``: the flood's neighbourhood; keep the one the objects were labelled with.

The largest piece keeps the object's id; the other pieces get new ids after the largest id in
use. Only the object's own voxels change: neighbours inside its box keep their ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from biosegment.engine.instances import DEFAULT_CONNECTIVITY, connectivity_structure
from biosegment.engine.object_boxes import object_boxes
from biosegment.engine.volume_blocks import BlockSource
from biosegment.errors import InputError

__all__ = ["SplitResult", "split_touching", "SPLIT_BYTES_PER_VOXEL", "SPLIT_MEMORY_BUDGET"]

#: Bytes per box voxel while one object is split: the ids read, its mask, the float64
#: distance (or probability) and its negation, the seed mask and labels, the watershed's
#: output and its internal queue and flags.
SPLIT_BYTES_PER_VOXEL = 64
#: Bytes one object's split may take unless the caller gives another budget.
SPLIT_MEMORY_BUDGET = 2**30


@dataclass(frozen=True, slots=True)
class SplitResult:
    """What :func:`split_touching` did.

    ``objects`` is the largest id after splitting; ``pieces`` maps each split object's id to
    the ids of its pieces (its own first); ``too_large`` lists objects left whole because
    their box would need more than the memory budget.
    """

    objects: int
    pieces: dict[int, list[int]] = field(default_factory=dict)
    too_large: list[int] = field(default_factory=list)


def _check_settings(seeds: str, probability: Any, h: float, margin: int) -> None:
    if seeds not in ("distance", "probability"):
        raise InputError(f"seeds must be 'distance' or 'probability', got {seeds!r}", where="seeds")
    if seeds == "probability" and probability is None:
        raise InputError(
            "seeds from the probability need the probability volume", where="probability"
        )
    if not h > 0:
        raise InputError(f"h must be above zero, got {h}", where="h")
    if margin < 0:
        raise InputError(f"margin must be zero or more voxels, got {margin}", where="margin")


def _seed_labels(
    elevation: np.ndarray, mask: np.ndarray, h: float, min_seed_distance: int, structure: np.ndarray
) -> tuple[np.ndarray, int]:
    """Label the h-maxima of ``elevation`` inside ``mask`` (one label per maximum region)."""
    peaks = h_maxima(np.where(mask, elevation, 0), h, footprint=structure).astype(bool) & mask
    seeds, count = ndimage.label(peaks, structure=structure)
    if count > 1 and min_seed_distance > 0:
        # One point per maximum region; peak_local_max keeps the higher of any two closer than
        # min_seed_distance, and the regions of the dropped points go.
        points = np.asarray(ndimage.maximum_position(elevation, seeds, range(1, count + 1)))
        marks = np.zeros(mask.shape, np.int32)
        marks[tuple(points.T)] = np.arange(1, count + 1)
        kept = peak_local_max(
            np.where(marks > 0, elevation, elevation.min() - 1),
            min_distance=min_seed_distance,
            labels=(marks > 0).astype(np.int32),
            exclude_border=False,
        )
        keep = np.zeros(count + 1, bool)
        keep[marks[tuple(kept.T)]] = True
        seeds = np.where(keep[seeds], seeds, 0)
        seeds, count = ndimage.label(seeds > 0, structure=structure)
    return seeds, count


def split_touching(
    labels: Any,
    *,
    seeds: Literal["distance", "probability"] = "distance",
    probability: Any = None,
    h: float = 2.0,
    min_seed_distance: int = 0,
    margin: int = 2,
    voxel_size: Sequence[float] | None = None,
    connectivity: int = DEFAULT_CONNECTIVITY,
    ids: Sequence[int] | None = None,
    boxes: np.ndarray | None = None,
    memory_budget: int = SPLIT_MEMORY_BUDGET,
) -> SplitResult:
    """Split the objects of the instance volume ``labels`` in place (see the module's notes).

    :param labels: a (z, y, x) uint32 instance volume that takes slice assignment (a numpy
        array, a memory map, a Zarr dataset): each object's box is read, split and written back.
    :param seeds: ``distance`` or ``probability``.
    :param probability: the class probability, same shape, when ``seeds="probability"``.
    :param h: how far a seed must rise above its surroundings (nm or voxels of distance, or
        probability units).
    :param min_seed_distance: drop seeds closer than this many voxels to a higher one (0: keep).
    :param margin: voxels added around each box, so the distance transform sees the background.
    :param voxel_size: (z, y, x) nm, for an anisotropic distance transform.
    :param connectivity: the flood's neighbourhood, 1, 2 or 3 (as scipy's structure).
    :param ids: the objects to consider (default: all).
    :param boxes: the boxes from :func:`~biosegment.engine.object_boxes.object_boxes`, when
        known (default: found with one pass over the volume).
    :param memory_budget: bytes one object's split may take; larger objects stay whole.
    :raises InputError: for a bad parameter, naming it.
    """
    _check_settings(seeds, probability, h, margin)
    structure = connectivity_structure(connectivity)
    shape = tuple(int(n) for n in labels.shape)
    if boxes is None:
        boxes = object_boxes(labels)
    scores = None
    if probability is not None:
        scores = BlockSource.of(probability, name="probability")
        scores.check_shape((shape[0], shape[1], shape[2]))
    sampling = None if voxel_size is None else tuple(float(v) for v in voxel_size)
    largest = len(boxes) - 1
    result = SplitResult(objects=largest)
    pieces: dict[int, list[int]] = {}
    for object_id in range(1, len(boxes)) if ids is None else ids:
        start, stop = boxes[object_id, :3], boxes[object_id, 3:]
        if np.any(stop <= start):
            continue  # absent
        low = np.maximum(start - margin, 0)
        high = np.minimum(stop + margin, shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
        if int(np.prod(high - low)) * SPLIT_BYTES_PER_VOXEL > memory_budget:
            result.too_large.append(int(object_id))
            continue
        crop = np.asarray(labels[box])
        mask = crop == object_id
        if seeds == "distance":
            elevation = ndimage.distance_transform_edt(mask, sampling=sampling)
        else:
            assert scores is not None
            elevation = scores.read(*box).astype(np.float64)
        markers, count = _seed_labels(elevation, mask, h, min_seed_distance, structure)
        if count < 2:
            continue
        flooded = watershed(-elevation, markers, mask=mask, connectivity=connectivity)
        sizes = np.bincount(flooded[mask], minlength=count + 1)
        order = np.argsort(-sizes[1:], kind="stable") + 1
        new_ids = np.zeros(count + 1, np.int64)
        new_ids[order[0]] = object_id
        new_ids[order[1:]] = np.arange(largest + 1, largest + count)
        new_ids[0] = object_id  # voxels no seed reached stay with the object
        if largest + count - 1 > np.iinfo(np.uint32).max:
            raise InputError("splitting needs more ids than uint32 holds", where="labels")
        largest += count - 1
        crop[mask] = new_ids[flooded[mask]]
        labels[box] = crop
        pieces[int(object_id)] = [int(object_id), *(int(i) for i in new_ids[order[1:]])]
    return SplitResult(objects=largest, pieces=pieces, too_large=result.too_large)
