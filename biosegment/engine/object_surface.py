"""The marching-cubes surface area of every object, summed cube by cube over slabs.

Marching cubes meshes a mask one cube of 2 x 2 x 2 voxels at a time, and the triangles of a
cube depend only on which of its eight corners are inside (at level 0.5 the vertices sit half
way along the edges, and scikit-image's Lewiner variant resolves ambiguous cubes from the
cube's own values). So the mesh area of an object is a sum over cubes of a number that depends
only on the cube's 8-bit corner pattern and the voxel size. :func:`cube_area_table` computes
those 256 numbers once with :func:`skimage.measure.marching_cubes` and
:func:`~skimage.measure.mesh_surface_area`; :class:`SurfaceAreas` then visits only the cubes
where ids differ (the objects' borders), for every object at once, one slab at a time. The
result equals ``mesh_surface_area(*marching_cubes(pad(ids == i, 1), 0.5, spacing))`` for every
object ``i`` (the volume is treated as padded with one voxel of background).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
from skimage.measure import marching_cubes, mesh_surface_area

__all__ = ["cube_area_table", "SurfaceAreas"]

# Corner k of a cube sits at offset (dz, dy, dx) = the bits of k, z the highest.
_CORNERS = tuple(itertools.product((0, 1), repeat=3))
# Border cubes handled at once: bounds the (n, 8) corner ids and their patterns.
_CUBES_AT_ONCE = 1 << 20


@functools.lru_cache(maxsize=16)
def cube_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """The marching-cubes area (level 0.5) of each of the 256 corner patterns of one cube.

    Bit ``k`` of a pattern says corner ``_CORNERS[k]`` is inside.
    """
    areas = np.zeros(256)
    for pattern in range(1, 255):
        corners = np.array([(pattern >> k) & 1 for k in range(8)], np.float32).reshape(2, 2, 2)
        vertices, faces, _, _ = marching_cubes(corners, 0.5, spacing=spacing)
        areas[pattern] = mesh_surface_area(vertices, faces)
    areas.flags.writeable = False
    return areas


class SurfaceAreas:
    """Accumulate every object's mesh area over the slabs of an instance volume, in z order.

    Give each slab to :meth:`add`, then call :meth:`finish` for the areas by id, one row per
    voxel size in ``spacings``.
    """

    def __init__(
        self, plane_shape: tuple[int, int], spacings: Sequence[tuple[float, float, float]]
    ):
        self._tables = [cube_area_table(tuple(float(v) for v in s)) for s in spacings]
        # The last plane seen, padded by one voxel of background in y and x; before the first
        # slab, the background plane that pads the volume in z.
        self._previous = np.zeros((plane_shape[0] + 2, plane_shape[1] + 2), np.int64)
        self._areas = np.zeros((len(spacings), 1))

    def add(self, ids: np.ndarray) -> None:
        """Take the next slab of ids (planes following the previous slab's)."""
        if not len(ids):
            return
        # uint32 ids (the instance volumes' type) stay uint32: half the memory of int64.
        small = ids.dtype.kind == "u" and ids.dtype.itemsize <= 4
        stack = np.zeros((len(ids) + 1, *self._previous.shape), np.uint32 if small else np.int64)
        stack[0] = self._previous
        stack[1:, 1:-1, 1:-1] = ids
        self._previous = stack[-1].copy()
        self._add_cubes(stack)

    def finish(self, objects: int) -> np.ndarray:
        """The areas, shape ``(len(spacings), objects + 1)``, after the background plane that
        closes the volume."""
        closing = np.zeros((2, *self._previous.shape), self._previous.dtype)
        closing[0] = self._previous
        self._add_cubes(closing)
        result = np.zeros((len(self._tables), objects + 1))
        width = min(objects + 1, self._areas.shape[1])
        result[:, :width] = self._areas[:, :width]
        return result

    def _add_cubes(self, stack: np.ndarray) -> None:
        depth, height, width = (n - 1 for n in stack.shape)
        first = stack[:depth, :height, :width]
        border = np.zeros(first.shape, bool)
        for dz, dy, dx in _CORNERS[1:]:
            border |= stack[dz : dz + depth, dy : dy + height, dx : dx + width] != first
        cubes = np.flatnonzero(border)
        if not len(cubes):
            return
        z, rest = np.divmod(cubes, height * width)
        y, x = np.divmod(rest, width)
        starts = (z * stack.shape[1] + y) * stack.shape[2] + x
        offsets = np.asarray(
            [(dz * stack.shape[1] + dy) * stack.shape[2] + dx for dz, dy, dx in _CORNERS]
        )
        flat = stack.ravel()
        for begin in range(0, len(starts), _CUBES_AT_ONCE):
            corners = flat[starts[begin : begin + _CUBES_AT_ONCE, None] + offsets[None, :]]
            self._add_patterns(corners)

    def _add_patterns(self, corners: np.ndarray) -> None:
        """Add the area of each object in each cube (``corners``: (n, 8) ids)."""
        largest = int(corners.max())
        if largest >= self._areas.shape[1]:
            grown = np.zeros((len(self._tables), max(largest + 1, 2 * self._areas.shape[1])))
            grown[:, : self._areas.shape[1]] = self._areas
            self._areas = grown
        for k in range(8):
            candidate = corners[:, k]
            # Each object of a cube once: at its first corner.
            counted = candidate != 0
            for j in range(k):
                counted &= corners[:, j] != candidate
            if not counted.any():
                continue
            inside = corners[counted] == candidate[counted, None]
            patterns = inside.astype(np.int64) @ (1 << np.arange(8))
            ids = candidate[counted]
            for row, table in enumerate(self._tables):
                self._areas[row] += np.bincount(
                    ids, table[patterns], minlength=self._areas.shape[1]
                )
