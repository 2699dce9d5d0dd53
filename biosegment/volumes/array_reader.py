"""A volume reader over any array-like object that slices like numpy: Zarr, N5, HDF5, MRC.

Chunked formats (Zarr, N5, HDF5) and memory-mapped ones (MRC) all answer ``array[z0:z1, ys,
xs]`` by decoding only the chunks (or touching only the pages) that box covers, so a single
reader class serves them all. Each format module opens its container, finds the array and
builds an :class:`ArrayVolumeReader` with the facts it read from the headers: the volume's
:class:`~biosegment.volumes.base.VolumeInfo`, the leading singleton axes to drop (a ``(t, c,
z, y, x)`` OME-Zarr image holds one volume at ``[0, 0]``), the storage chunks, an optional
value mapping (MRC's signed bytes) and, for formats with a resolution pyramid, the arrays of
the other levels. Failures while reading become VolumeErrors naming the file and the slice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from biosegment.errors import VolumeError
from biosegment.volumes.base import PyramidLevel, VolumeInfo, VolumeReader
from biosegment.volumes.failures import multichannel_error, volume_errors
from biosegment.volumes.limits import check_volume_claims

__all__ = ["ArrayVolumeReader", "LevelSource", "StackLayout", "level_voxel_size", "stack_layout"]


@dataclass(frozen=True, slots=True)
class StackLayout:
    """How an n-D array holds a (z, y, x) volume: the array to index and its leading axes."""

    array: Any  #: indexable as ``array[(0,) * lead + (z, ys, xs)]``
    lead: int  #: leading singleton axes (time, channel)
    shape: tuple[int, int, int]  #: (z, y, x)
    chunks: tuple[int, int, int] | None


class _PlaneAsStack:
    """A 2-D (y, x) array seen as a one-slice (1, y, x) stack."""

    def __init__(self, plane: Any):
        self._plane = plane

    def __getitem__(self, index: tuple) -> np.ndarray:
        z, ys, xs = index
        pixels = np.asarray(self._plane[ys, xs])
        if isinstance(z, slice):
            return pixels[np.newaxis][z]
        if z != 0:
            raise IndexError(f"slice {z} outside 0:1")
        return pixels


def stack_layout(
    array: Any,
    shape: Sequence[int],
    chunks: Sequence[int] | None,
    source: object,
    *,
    where: str | None = None,
) -> StackLayout:
    """Read a 2-D, 3-D or n-D array (leading axes of size 1) as a (z, y, x) stack.

    :raises VolumeError: for 1-D arrays, leading axes longer than 1 (channels, time), and
        shapes or chunk grids beyond the configured :mod:`~biosegment.volumes.limits`.
    """
    dims = tuple(int(d) for d in shape)
    spatial_chunks = tuple(int(c) for c in chunks) if chunks else None
    if len(dims) < 2:
        raise VolumeError(
            f"array of shape {list(dims)} is not an image (needs 2 or 3 axes)",
            source=source,
            where=where,
        )
    if len(dims) == 2:
        plane_chunks = (1, *spatial_chunks[-2:]) if spatial_chunks else None
        check_volume_claims((1, dims[0], dims[1]), plane_chunks, source, where=where)
        return StackLayout(_PlaneAsStack(array), 0, (1, dims[0], dims[1]), plane_chunks)
    lead = len(dims) - 3
    if any(d != 1 for d in dims[:lead]):
        raise multichannel_error(
            source,
            f"shape {list(dims)} with more than one channel or "
            "time point before the (z, y, x) axes",
            where=where,
        )
    if min(dims[lead:]) < 1:
        raise VolumeError(f"array of shape {list(dims)} is empty", source=source, where=where)
    volume_chunks = spatial_chunks[-3:] if spatial_chunks else None
    # before anything indexes the array: a header's claims are checked, not believed
    check_volume_claims(dims[lead:], volume_chunks, source, where=where)
    return StackLayout(array, lead, dims[lead:], volume_chunks)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class LevelSource:
    """The array of one resolution level and how it sits over level 0."""

    array: Any  #: numpy-style sliceable, (*lead, z, y, x)
    level: PyramidLevel


def level_voxel_size(
    voxel_size: tuple[float, float, float] | None, factors: Sequence[float]
) -> tuple[float, float, float] | None:
    """The voxel size of a level whose voxels span ``factors`` level-0 voxels."""
    if voxel_size is None:
        return None
    return tuple(float(v) * float(f) for v, f in zip(voxel_size, factors))  # type: ignore[return-value]


class ArrayVolumeReader(VolumeReader):
    """Reads a (z, y, x) volume out of an array with ``lead`` extra leading axes of size 1.

    :param info: header facts of level 0 (shape, dtype, voxel size, key).
    :param array: the level-0 array; ``array[(0,) * lead + (z, ys, xs)]`` must give pixels.
    :param lead: how many leading singleton axes (time, channel) to index with 0.
    :param chunks: the (z, y, x) storage chunk, or None.
    :param convert: maps raw pixels to the volume's dtype (default: native byte order copy).
    :param pyramid: the arrays of every level, level 0 first; None means no pyramid.
    :param lock: serialises reads for libraries whose handles are not thread-safe.
    :param on_close: releases the container; level readers get none, so closing them is free.
    """

    def __init__(
        self,
        info: VolumeInfo,
        array: Any,
        *,
        lead: int = 0,
        chunks: tuple[int, int, int] | None = None,
        convert: Callable[[np.ndarray], np.ndarray] | None = None,
        pyramid: Sequence[LevelSource] | None = None,
        lock: threading.Lock | None = None,
        on_close: Callable[[], None] | None = None,
    ):
        self._info = info
        self._array = array
        self._lead = (0,) * lead
        self._chunks = chunks
        self._convert = convert
        self._pyramid = tuple(pyramid) if pyramid else ()
        self._lock = lock
        self._on_close = on_close
        self._closed = False

    @property
    def info(self) -> VolumeInfo:
        return self._info

    @property
    def chunks(self) -> tuple[int, int, int] | None:
        return self._chunks

    @property
    def levels(self) -> tuple[PyramidLevel, ...]:
        if not self._pyramid:
            return super().levels
        return tuple(source.level for source in self._pyramid)

    def level(self, index: int) -> VolumeReader:
        if index == 0:
            return self
        if not 0 <= index < len(self._pyramid):
            raise IndexError(f"level {index} outside 0:{len(self.levels)}")
        source = self._pyramid[index]
        info = replace(
            self._info,
            shape=source.level.shape,
            voxel_size=level_voxel_size(self._info.voxel_size, source.level.factors),
        )
        # No pyramid of its own and no on_close: the parent owns the container.
        return ArrayVolumeReader(
            info,
            source.array,
            lead=len(self._lead),
            chunks=source.level.chunks,
            convert=self._convert,
            lock=self._lock,
        )

    def read_slice(self, z: int) -> np.ndarray:
        depth = self._info.shape[0]
        if not isinstance(z, (int, np.integer)) or not 0 <= z < depth:
            raise IndexError(f"slice {z} outside 0:{depth}")
        return self._read((int(z), slice(None), slice(None)), where=f"slice {int(z)}")

    def read_block(
        self, z0: int, z1: int, y: slice | None = None, x: slice | None = None
    ) -> np.ndarray:
        depth = self._info.shape[0]
        if not (0 <= z0 <= z1 <= depth):
            raise IndexError(f"z range {z0}:{z1} outside 0:{depth}")
        ys = y if y is not None else slice(None)
        xs = x if x is not None else slice(None)
        if z0 == z1:
            return super().read_block(z0, z1, ys, xs)
        return self._read((slice(z0, z1), ys, xs), where=f"slices {z0}-{z1 - 1}")

    def _read(self, index: tuple, *, where: str) -> np.ndarray:
        if self._closed:
            raise ValueError(f"{self._info.path} is closed")
        with volume_errors(self._info.path, "reading the volume", where=where):
            if self._lock is not None:
                with self._lock:
                    raw = np.asarray(self._array[self._lead + index])
            else:
                raw = np.asarray(self._array[self._lead + index])
        if self._convert is not None:
            return self._convert(raw)
        # A copy in native byte order: callers never hold on to library buffers or maps.
        return np.array(raw, dtype=self.dtype)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()
