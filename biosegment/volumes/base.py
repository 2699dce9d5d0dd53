"""The reader contract every volume format implements.

A volume is a 3-D single-channel image stack indexed ``(z, y, x)``. Readers are lazy: opening
or probing one reads headers only, ``read_slice`` costs one slice of I/O and ``read_block`` only
the slices it covers. Formats subclass :class:`VolumeReader`; callers never type-check readers,
they ask the capability properties instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["VolumeInfo", "VolumeReader", "SUPPORTED_DTYPES", "normalise"]

#: Pixel types BioSegment reads; anything else is rejected with a VolumeError naming the file.
SUPPORTED_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """What probing a volume tells without reading its pixels."""

    path: Path                       #: the file or folder that holds the volume
    file_type: str                   #: ``tif3d``, ``tif2d``, ``tifseq`` or ``pngseq``
    shape: tuple[int, int, int]      #: (z, y, x) in voxels
    dtype: str                       #: numpy dtype name: ``uint8``, ``uint16`` or ``float32``
    voxel_size: tuple[float, float, float] | None = None  #: (z, y, x) in nm, when the file says
    files: tuple[Path, ...] = field(default=())           #: the files read, in slice order

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
        }


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

    @abstractmethod
    def read_slice(self, z: int) -> np.ndarray:
        """Return slice ``z`` as a ``(y, x)`` array of the volume's dtype."""

    def read_block(self, z0: int, z1: int, y: slice | None = None,
                   x: slice | None = None) -> np.ndarray:
        """Return ``[z0:z1, y, x]`` as a new ``(z, y, x)`` array of the volume's dtype.

        The default reads slice by slice; formats with cheaper partial reads override it.
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

    def close(self) -> None:
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
    """
    dtype = array.dtype
    if dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    if dtype == np.float32:
        return np.clip(array, 0.0, 1.0)
    raise TypeError(f"unsupported dtype {dtype}; expected one of uint8, uint16, float32")
