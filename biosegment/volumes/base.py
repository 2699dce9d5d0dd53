"""The reader contract every volume format implements.

A volume is a 3-D single-channel image stack indexed ``(z, y, x)``. Readers are lazy: opening
or probing one reads headers only, ``read_slice`` costs one slice of I/O and ``read_block`` only
the slices (or, for chunked formats, the chunks) it covers. Formats subclass
:class:`VolumeReader`; callers never type-check readers, they ask the capability properties
instead: ``chunks`` (the storage grid to align reads with), ``levels`` and ``level(i)`` (the
resolution pyramid a viewer zooms through; one level for formats without one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["VolumeInfo", "VolumeReader", "PyramidLevel", "SUPPORTED_DTYPES", "normalise"]

#: Pixel types BioSegment reads; anything else is rejected with a VolumeError naming the file.
SUPPORTED_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """What probing a volume tells without reading its pixels."""

    path: Path  #: the file or folder that holds the volume
    file_type: str  #: one of ``opening.FILE_TYPES`` (``tif3d``, ``omezarr``, ...)
    shape: tuple[int, int, int]  #: (z, y, x) in voxels
    dtype: str  #: numpy dtype name: ``uint8``, ``uint16`` or ``float32``
    voxel_size: tuple[float, float, float] | None = None  #: (z, y, x) in nm, when the file says
    files: tuple[Path, ...] = field(default=())  #: the files read, in slice order
    key: str | None = None  #: the array inside a container (HDF5, Zarr, N5), if any

    @property
    def nbytes(self) -> int:
        z, y, x = self.shape
        return z * y * x * np.dtype(self.dtype).itemsize

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "file_type": self.file_type,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "voxel_size": None if self.voxel_size is None else list(self.voxel_size),
            **({"key": self.key} if self.key is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class PyramidLevel:
    """One resolution level of a volume; level 0 is the full-resolution data.

    ``factors`` is how many level-0 voxels one voxel of this level spans along (z, y, x):
    ``(1, 2, 2)`` for the first level of a pyramid that halves each slice. Level ``i`` of a
    reader is read through ``reader.level(i)``.
    """

    index: int
    shape: tuple[int, int, int]
    factors: tuple[float, float, float] = (1.0, 1.0, 1.0)
    chunks: tuple[int, int, int] | None = None


class VolumeReader(ABC):
    """Lazy, read-only access to one volume. Use as a context manager or call ``close()``."""

    @property
    @abstractmethod
    def info(self) -> VolumeInfo:
        """Header facts: shape, dtype, voxel size, files."""

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.info.shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.info.dtype)

    @property
    def voxel_size(self) -> tuple[float, float, float] | None:
        return self.info.voxel_size

    @property
    def is_memory_mapped(self) -> bool:
        """True when slices come straight from a memory map (no decode step)."""
        return False

    @property
    def chunks(self) -> tuple[int, int, int] | None:
        """The (z, y, x) storage chunk of chunked formats, None for the others.

        A read whose box starts and ends on multiples of it decodes no chunk twice.
        """
        return None

    @property
    def levels(self) -> tuple[PyramidLevel, ...]:
        """The resolution levels stored with the volume, full resolution first.

        Formats without a pyramid have one level: the volume itself.
        """
        return (PyramidLevel(0, self.shape, (1.0, 1.0, 1.0), self.chunks),)

    def level(self, index: int) -> VolumeReader:
        """A reader for resolution level ``index`` (0: this reader).

        Level readers share their parent's open files: they stay usable while the parent is
        open, and closing one of them releases nothing.

        :param index: the level, 0 for full resolution, up to ``len(levels) - 1``.
        :returns: a reader of that level's voxels.
        :raises IndexError: for a level the volume does not store.
        """
        if index == 0:
            return self
        raise IndexError(f"level {index} outside 0:{len(self.levels)}")

    @abstractmethod
    def read_slice(self, z: int) -> np.ndarray:
        """Read one slice, costing one slice of I/O.

        :param z: the slice, ``0 <= z < shape[0]``.
        :returns: a ``(y, x)`` array of the volume's dtype.
        :raises VolumeError: when the file cannot be read there (naming the file and slice).
        """

    def read_block(
        self, z0: int, z1: int, y: slice | None = None, x: slice | None = None
    ) -> np.ndarray:
        """Read a box of the volume.

        The default reads slice by slice; formats with cheaper partial reads override it.

        :param z0: the first slice.
        :param z1: one past the last slice (``z0 <= z1 <= shape[0]``).
        :param y: the rows to read (default: all).
        :param x: the columns to read (default: all).
        :returns: ``[z0:z1, y, x]`` as a new ``(z, y, x)`` array of the volume's dtype.
        :raises IndexError: for a z range outside the volume.
        """
        nz = self.shape[0]
        if not (0 <= z0 <= z1 <= nz):
            raise IndexError(f"z range {z0}:{z1} outside 0:{nz}")
        ys = y if y is not None else slice(None)
        xs = x if x is not None else slice(None)
        planes = [self.read_slice(z)[ys, xs] for z in range(z0, z1)]
        if not planes:
            h = len(range(*ys.indices(self.shape[1])))
            w = len(range(*xs.indices(self.shape[2])))
            return np.empty((0, h, w), dtype=self.dtype)
        return np.stack(planes)

    def close(self) -> None:  # noqa: B027 - optional: readers without handles keep it
        """Release file handles and memory maps."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.shape[0]


def normalise(array: np.ndarray) -> np.ndarray:
    """Scale raw pixels to float32 in [0, 1], the network's input range.

    - ``uint8``: divided by 255 (exactly what the old stack's models were trained with).
    - ``uint16``: divided by 65535.
    - ``float32``: taken as already scaled, clipped to [0, 1].

    :param array: pixels of one of :data:`SUPPORTED_DTYPES`, any shape.
    :returns: a float32 array of the same shape.
    :raises TypeError: for any other dtype.
    """
    dtype = array.dtype
    if dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    if dtype == np.float32:
        return np.clip(array, 0.0, 1.0)
    raise TypeError(f"unsupported dtype {dtype}; expected one of uint8, uint16, float32")
