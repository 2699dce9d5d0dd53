"""A resolution pyramid for volumes stored without one (large TIFFs), kept in a cache folder.

Zoomed out, the viewer shows every 2nd, 4th, ... pixel of a slice. Formats without a pyramid
would have to read whole full-resolution slices for that, which is slow for slices of many
thousand pixels. :func:`build_pyramid` reads the volume once, slice by slice, and writes the
halved levels (2x2 means, down to one 512-pixel tile) as an OME-Zarr store in the cache
folder (``<data>/.biosegment/cache/pyramids/``); level 0 is never copied. The store's name
holds a fingerprint of the source file (size and modification time), so a rewritten file
never shows an old pyramid. :func:`open_with_pyramid` wraps a reader so that its ``levels`` and
``level(i)`` serve the cached levels when a current pyramid exists; readers that already have
a pyramid, or volumes small enough not to need one, pass through unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from biosegment.errors import CancelledError
from biosegment.folder_names import CACHE_DIR, STATE_DIR
from biosegment.volumes.base import PyramidLevel, VolumeInfo, VolumeReader
from biosegment.volumes.containers import storage_path
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter, pyramid_shapes
from biosegment.volumes.zarr_volume import open_zarr

__all__ = [
    "PyramidCache",
    "PyramidVolumeReader",
    "build_pyramid",
    "open_with_pyramid",
    "needs_pyramid",
    "PYRAMID_MIN_SIZE",
    "CACHE_LOCATION",
]

#: Volumes whose slices are at most this many pixels on a side are shown without a pyramid.
PYRAMID_MIN_SIZE = 2048
#: Where a data folder keeps its cached pyramids, relative to its root.
CACHE_LOCATION = f"{STATE_DIR}/{CACHE_DIR}/pyramids"


def needs_pyramid(reader: VolumeReader, *, min_size: int = PYRAMID_MIN_SIZE) -> bool:
    """True when a volume without its own pyramid has slices larger than ``min_size``."""
    return len(reader.levels) == 1 and max(reader.shape[1:]) > min_size


def _fingerprint(info: VolumeInfo) -> str:
    """Changes whenever the stored volume does (its files' sizes and modification times)."""
    digest = hashlib.sha256()
    for path in info.files or (storage_path(info.path),):
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    digest.update(f"{info.key}|{info.shape}|{info.dtype}".encode())
    return digest.hexdigest()[:16]


class PyramidCache:
    """Where cached pyramids live: one OME-Zarr store per volume version."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def for_data_folder(cls, root: Path) -> PyramidCache:
        """The cache of the data folder at ``root`` (``.biosegment/cache/pyramids``)."""
        return cls(Path(root) / CACHE_LOCATION)

    def _prefix(self, info: VolumeInfo) -> str:
        source = f"{Path(info.path).resolve()}|{info.key}"
        return hashlib.sha256(source.encode()).hexdigest()[:16]

    def store_for(self, info: VolumeInfo) -> Path:
        """The store that holds (or will hold) the pyramid of this version of the volume."""
        return self.folder / f"{self._prefix(info)}-{_fingerprint(info)}.ome.zarr"

    def find(self, info: VolumeInfo) -> Path | None:
        """The current pyramid of the volume, or None when it has not been built."""
        store = self.store_for(info)
        return store if store.is_dir() else None

    def remove_stale(self, info: VolumeInfo) -> int:
        """Remove pyramids of earlier versions of the volume; returns how many."""
        current = self.store_for(info).name
        removed = 0
        if not self.folder.is_dir():
            return removed
        for entry in self.folder.iterdir():
            if entry.name.startswith(self._prefix(info)) and entry.name != current:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


def _halve(plane: np.ndarray) -> np.ndarray:
    """2x2 mean of a slice (odd edges averaged with themselves), in float32."""
    padded = np.pad(plane, ((0, plane.shape[0] % 2), (0, plane.shape[1] % 2)), mode="edge")
    padded = padded.astype(np.float32)
    return (
        padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
    ) * np.float32(0.25)


def build_pyramid(
    reader: VolumeReader,
    cache: PyramidCache,
    *,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Path:
    """Write the cached pyramid of ``reader``'s volume (levels 1 and up) and return its store.

    Reads every slice once. An existing current pyramid is returned at once; older versions
    of it are removed afterwards. Cancelling (``should_cancel`` returns True) raises
    :class:`CancelledError` and leaves nothing behind.
    """
    info = reader.info
    existing = cache.find(info)
    if existing is not None:
        return existing
    depth, height, width = reader.shape
    shapes = pyramid_shapes(reader.shape)
    if len(shapes) < 2:
        raise ValueError(f"{info.path}: slices of {height}x{width} need no pyramid")
    store = cache.store_for(info)
    store.parent.mkdir(parents=True, exist_ok=True)
    voxel_size = info.voxel_size
    if voxel_size is not None:
        voxel_size = (voxel_size[0], voxel_size[1] * 2, voxel_size[2] * 2)
    dtype = np.dtype(info.dtype)
    with OmeZarrWriter(
        store,
        shapes[1],
        dtype=dtype.name,
        voxel_size=voxel_size,
        downsampling="mean",
        chunks=(1, 512, 512),
        name=Path(info.path).name,
    ) as writer:
        for z in range(depth):
            if should_cancel is not None and should_cancel():
                raise CancelledError("pyramid build cancelled")
            halved = _halve(reader.read_slice(z))
            if dtype.kind != "f":
                halved = np.rint(halved)
            writer.write_slice(z, halved.astype(dtype))
            if progress is not None:
                progress((z + 1) / depth)
    cache.remove_stale(info)
    return store


class PyramidVolumeReader(VolumeReader):
    """A reader whose level 0 is the original volume and whose other levels are cached."""

    def __init__(self, base: VolumeReader, pyramid: VolumeReader):
        self._base = base
        self._pyramid = pyramid

    @property
    def info(self) -> VolumeInfo:
        return self._base.info

    @property
    def is_memory_mapped(self) -> bool:
        return self._base.is_memory_mapped

    @property
    def chunks(self) -> tuple[int, int, int] | None:
        return self._base.chunks

    @property
    def levels(self) -> tuple[PyramidLevel, ...]:
        cached = tuple(
            PyramidLevel(
                level.index + 1,
                level.shape,
                (level.factors[0], level.factors[1] * 2, level.factors[2] * 2),
                level.chunks,
            )
            for level in self._pyramid.levels
        )
        return (PyramidLevel(0, self.shape, (1.0, 1.0, 1.0), self.chunks), *cached)

    def level(self, index: int) -> VolumeReader:
        if index == 0:
            return self
        return self._pyramid.level(index - 1)

    def read_slice(self, z: int) -> np.ndarray:
        return self._base.read_slice(z)

    def read_block(
        self, z0: int, z1: int, y: slice | None = None, x: slice | None = None
    ) -> np.ndarray:
        return self._base.read_block(z0, z1, y, x)

    def close(self) -> None:
        self._pyramid.close()
        self._base.close()


def open_with_pyramid(reader: VolumeReader, cache: PyramidCache) -> VolumeReader:
    """``reader`` with its cached pyramid attached when one is current, else ``reader``."""
    if len(reader.levels) > 1:
        return reader
    store = cache.find(reader.info)
    if store is None:
        return reader

    return PyramidVolumeReader(reader, open_zarr(store))
