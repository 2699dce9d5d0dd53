"""The bounding box of every object of an instance volume, found one slab at a time.

Splitting touching objects and measuring surfaces both work on one object's box, so they first
need every box; the object table needs them as columns. :class:`BoxFinder` takes the slabs of an
instance volume in any order and keeps only two small arrays per object id: where its voxels
start and where they stop (exclusive, as Python slices and scikit-image's ``bbox``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from biosegment.engine.volume_blocks import DEFAULT_BLOCK_PLANES, BlockSource, z_ranges

__all__ = ["BoxFinder", "object_boxes"]


class BoxFinder:
    """Accumulate per-id boxes over slabs of an instance volume."""

    def __init__(self, shape: tuple[int, int, int]):
        self.shape = tuple(int(n) for n in shape)
        self._starts = np.zeros((1, 3), np.int64)
        self._stops = np.zeros((1, 3), np.int64)
        self.largest = 0  # the largest id seen so far

    def _grow(self, largest: int) -> None:
        have = len(self._starts)
        if largest < have:
            return
        extra = max(largest + 1, 2 * have) - have
        self._starts = np.concatenate([self._starts, np.tile(np.asarray(self.shape), (extra, 1))])
        self._stops = np.concatenate([self._stops, np.zeros((extra, 3), np.int64)])

    def add(self, z0: int, ids: np.ndarray) -> None:
        """Take the slab ``ids`` whose first plane is plane ``z0`` of the volume."""
        largest = int(ids.max()) if ids.size else 0
        if largest == 0:
            return
        self._grow(largest)
        self.largest = max(self.largest, largest)
        boxes = ndimage.find_objects(ids)
        present = np.asarray([i + 1 for i, box in enumerate(boxes) if box is not None])
        starts = np.asarray([[s.start for s in boxes[i - 1]] for i in present], np.int64)
        stops = np.asarray([[s.stop for s in boxes[i - 1]] for i in present], np.int64)
        starts[:, 0] += z0
        stops[:, 0] += z0
        self._starts[present] = np.minimum(self._starts[present], starts)
        self._stops[present] = np.maximum(self._stops[present], stops)

    def boxes(self, objects: int | None = None) -> np.ndarray:
        """``(objects + 1, 6)`` int64: z0, y0, x0, z1, y1, x1 per id (row 0 and absent ids:
        start at the volume's shape, stop at 0)."""
        largest = self.largest if objects is None else objects
        self._grow(largest)
        return np.concatenate([self._starts, self._stops], axis=1)[: largest + 1].copy()


def object_boxes(
    labels: Any, *, objects: int | None = None, block_planes: int = DEFAULT_BLOCK_PLANES
) -> np.ndarray:
    """Every object's box in the instance volume ``labels`` (see :meth:`BoxFinder.boxes`).

    :param labels: the instance volume: an array-like, a volume reader or a ``BlockSource``.
    :param objects: the largest id (default: the largest id found).
    :param block_planes: z planes read at a time.
    """
    source = BlockSource.of(labels, name="labels")
    finder = BoxFinder(source.shape)
    for z0, z1 in z_ranges(source.shape[0], block_planes):
        finder.add(z0, source.planes(z0, z1))
    return finder.boxes(objects)
