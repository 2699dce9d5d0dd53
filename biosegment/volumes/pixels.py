"""Check the shape and pixel type of what a writer is given before it goes into a volume.

Writers (TIFF, OME-Zarr) accept a slice whose pixels fit the volume's type even when the array
arrives in another one: class ids come out of ``argmax`` as int64, a mask as bool. A value that
does not fit (300 in uint8, a negative id) or a float where class ids are stored is refused
with an error that names the output, never wrapped round or truncated silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosegment.volumes.base import SUPPORTED_DTYPES

__all__ = ["checked_shape", "writable_dtype", "coerce_plane", "WRITABLE_DTYPES"]


def checked_shape(shape) -> tuple[int, int, int]:
    """``shape`` as three positive ints (z, y, x), or a ValueError."""
    dims = tuple(int(d) for d in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape}")
    return dims  # type: ignore[return-value]


#: What writers store: the pixel types BioSegment reads as images, and uint32 for instance
#: volumes (one id per object; more objects than uint16 can number are common).
WRITABLE_DTYPES = (*SUPPORTED_DTYPES, np.dtype("uint32"))


def writable_dtype(dtype, path: Path) -> np.dtype:
    """``dtype`` as a numpy dtype when writers can store it (uint8, uint16, uint32, float32)."""
    dtype = np.dtype(dtype)
    if dtype not in WRITABLE_DTYPES:
        raise ValueError(f"{path}: cannot write {dtype}; use uint8, uint16, uint32 or float32")
    return dtype


def coerce_plane(array, shape: tuple[int, int], dtype: np.dtype, path: Path) -> np.ndarray:
    """``array`` as a (y, x) plane of ``dtype``; a ValueError when its shape or values do not fit."""
    plane = np.asarray(array)
    if plane.shape != tuple(shape):
        raise ValueError(
            f"{path}: slice shape {plane.shape} does not match the volume's {tuple(shape)}"
        )
    if plane.dtype == dtype:
        return plane
    if dtype.kind == "f":
        if plane.dtype.kind not in "fiub":
            raise ValueError(f"{path}: cannot store {plane.dtype} pixels as float32")
        return plane.astype(dtype)
    if plane.dtype.kind not in "iub":
        raise ValueError(
            f"{path}: cannot store {plane.dtype} pixels as {dtype}; round them to integers first"
        )
    # Class ids often arrive as int64 from argmax; accept them when every value fits.
    limits = np.iinfo(dtype)
    if plane.size and (plane.min() < limits.min or plane.max() > limits.max):
        raise ValueError(f"{path}: values {plane.min()}..{plane.max()} do not fit in {dtype}")
    return plane.astype(dtype)
