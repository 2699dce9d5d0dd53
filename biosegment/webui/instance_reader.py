"""Open a segmentation's instance volume (uint32 object ids) and read boxes of one slice.

Instance volumes are read through :func:`biosegment.volumes.open_volume` when it accepts them.
BioSegment's volume readers take uint8, uint16 and float32 only, the types of images and class
labels, so a uint32 volume they refuse is opened here instead, in the two layouts a segment job
writes: a TIFF stack (memory-mapped when stored uncompressed and contiguous, else one page at a
time) and an OME-Zarr label image (its full-resolution level, read chunk by chunk). Either way a
read touches only the slice and box asked for, never the whole volume.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tifffile
import zarr

from biosegment.errors import VolumeError
from biosegment.volumes import open_volume

__all__ = ["InstanceReader", "open_instances"]


class InstanceReader(Protocol):
    """A (z, y, x) volume of object ids, read one box of one slice at a time."""

    shape: tuple[int, int, int]

    def read(self, z: int, rows: slice, cols: slice) -> np.ndarray: ...

    def close(self) -> None: ...


class _VolumeInstances:
    """Through BioSegment's own reader (a volume of a type it reads)."""

    def __init__(self, reader: Any):
        self.reader = reader
        self.shape = tuple(reader.shape)
        self._lock = threading.Lock()  # decoding readers seek one file handle

    def read(self, z: int, rows: slice, cols: slice) -> np.ndarray:
        if self.reader.is_memory_mapped:
            return self.reader.read_block(z, z + 1, rows, cols)[0]
        with self._lock:
            return self.reader.read_block(z, z + 1, rows, cols)[0]

    def close(self) -> None:
        self.reader.close()


class _TiffInstances:
    """A uint32 TIFF stack: mapped into memory where it can be, else a page per read."""

    def __init__(self, path: Path):
        self._file = tifffile.TiffFile(path)
        self._lock = threading.Lock()
        pages = self._file.pages
        first = pages.first
        if first.dtype is None or np.dtype(first.dtype).kind not in "ui" or first.ndim != 2:
            self._file.close()
            raise VolumeError(
                f"object ids must be one unsigned integer per pixel, found {first.dtype} "
                f"pages of shape {first.shape}",
                source=path,
            )
        self.shape = (len(pages), *first.shape)
        try:
            self._mapped: np.ndarray | None = tifffile.memmap(path, mode="r").reshape(self.shape)
        except (ValueError, OSError):
            self._mapped = None  # compressed or scattered pages: decode the page asked for

    def read(self, z: int, rows: slice, cols: slice) -> np.ndarray:
        if self._mapped is not None:
            return np.asarray(self._mapped[z, rows, cols])
        with self._lock:
            return self._file.pages[z].asarray()[rows, cols]

    def close(self) -> None:
        self._mapped = None
        self._file.close()


class _ZarrInstances:
    """A uint32 OME-Zarr label image: the first (full-resolution) level of its multiscales."""

    def __init__(self, path: Path):
        try:
            group = zarr.open_group(str(path), mode="r")
            attributes = group.attrs.asdict()
            multiscales = attributes.get("multiscales") or attributes.get("ome", {}).get(
                "multiscales"
            )
            array = group[multiscales[0]["datasets"][0]["path"]]
        except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
            raise VolumeError(f"not an OME-Zarr image with a level 0: {exc}", source=path) from None
        if len(array.shape) != 3:
            raise VolumeError(f"expected (z, y, x) object ids, found {array.shape}", source=path)
        self._array = array
        self.shape = tuple(int(n) for n in array.shape)

    def read(self, z: int, rows: slice, cols: slice) -> np.ndarray:
        return np.asarray(self._array[z, rows, cols])

    def close(self) -> None:
        pass


def open_instances(path: Path) -> InstanceReader:
    """The instance volume at ``path``; VolumeError naming it when it cannot be read."""
    try:
        return _VolumeInstances(open_volume(path))
    except VolumeError:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _TiffInstances(path)
        if path.is_dir():
            return _ZarrInstances(path)
        raise
