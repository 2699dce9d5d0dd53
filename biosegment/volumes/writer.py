"""Write a volume as a multi-page TIFF, slice by slice, without ever exposing half a file.

Segmentation and export jobs produce their output one slice (or one block of slices) at a time
and may be cancelled or run out of disk at any moment. :class:`LabelVolumeWriter` writes to a
hidden temporary file beside the destination and renames it into place only when every slice
is there (see :mod:`biosegment.volumes.atomic`); on any error the temporary file is removed and
a previous file at the destination is left exactly as it was.

Files carry ImageJ metadata (axes ZYX, pixel size and slice spacing in nm) so Fiji and napari
open them as calibrated stacks. Compressed output stores one compressed page per slice;
uncompressed output stores all pixels as one block after the header, which readers
memory-map. Volumes too big for classic TIFF (4 GiB) become BigTIFF with tifffile's JSON
description instead, since ImageJ cannot read BigTIFF.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile

from biosegment.volumes.atomic import AtomicFile
from biosegment.volumes.base import SUPPORTED_DTYPES

__all__ = ["LabelVolumeWriter", "write_volume", "BIGTIFF_THRESHOLD"]

#: Pixel bytes above which output is BigTIFF; the margin leaves room for page headers.
BIGTIFF_THRESHOLD = 2**32 - 2**26


def _calibration(voxel_size) -> tuple[dict, dict]:
    """Description metadata and resolution-tag options that record the stack's calibration."""
    metadata: dict = {"axes": "ZYX"}
    if voxel_size is None:
        return metadata, {}
    z, y, x = (float(v) for v in voxel_size)
    if min(z, y, x) <= 0:
        raise ValueError(f"voxel size must be positive, got {voxel_size}")
    metadata.update(spacing=z, unit="nm")
    # ImageJ keeps the pixel size in the resolution tags, as pixels per unit.
    return metadata, {"resolution": (1.0 / x, 1.0 / y), "resolutionunit": "NONE"}


class _ContiguousPixels:
    """Uncompressed layout: header first (pixels left as a hole), then one block of pixels."""

    def __init__(self, handle: BinaryIO, shape, dtype: np.dtype, voxel_size, bigtiff: bool):
        self._handle = handle
        self._slice_bytes = shape[1] * shape[2] * dtype.itemsize
        metadata, resolution = _calibration(voxel_size)
        self._offset, _ = tifffile.imwrite(
            handle, shape=shape, dtype=dtype, photometric="minisblack", returnoffset=True,
            imagej=not bigtiff, bigtiff=bigtiff, metadata=metadata, **resolution)

    def write(self, z: int, plane: np.ndarray) -> None:
        self._handle.seek(self._offset + z * self._slice_bytes)
        self._handle.write(np.ascontiguousarray(plane).tobytes())

    def finish(self) -> None:
        self._handle.flush()

    def discard(self) -> None:
        pass


class _CompressedPages:
    """Compressed layout: one page per slice, the stack description on the first page."""

    def __init__(self, handle: BinaryIO, shape, dtype: np.dtype, voxel_size, bigtiff: bool,
                 compression: str):
        metadata, self._resolution = _calibration(voxel_size)
        if bigtiff:
            # tifffile's JSON "shaped" description, which its readers and ours understand
            self._description = json.dumps({"shape": list(shape), **metadata})
        else:
            calibration = {k: v for k, v in metadata.items() if k != "axes"}
            self._description = tifffile.imagej_description(shape, "ZYX", **calibration)
        self._compression = compression
        self._writer = tifffile.TiffWriter(handle, bigtiff=bigtiff)

    def write(self, z: int, plane: np.ndarray) -> None:
        # metadata=None stops tifffile adding its own description; ours goes on page 0 only.
        self._writer.write(plane, compression=self._compression, contiguous=False,
                           metadata=None, photometric="minisblack",
                           description=self._description if z == 0 else None,
                           **self._resolution)

    def finish(self) -> None:
        self._writer.close()

    def discard(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass


class LabelVolumeWriter:
    """Stream a (z, y, x) volume into a multi-page TIFF at ``path``, atomically.

    Write slices in order with :meth:`write_slice` (or :meth:`write_block`), then
    :meth:`commit`; or use it as a context manager, which commits when the block ends normally
    and aborts when it raises. Until commit, the data lives at :attr:`temp_path` and ``path``
    keeps its previous content (or stays absent).

    ``dtype`` is uint8 (class ids, the default), uint16 or float32; ``compression`` any
    tifffile codec name (``"zlib"``, ``"zstd"``, ``"lzw"``) or None; ``voxel_size`` (z, y, x)
    in nm; ``bigtiff`` forces BigTIFF on or off (default: only when classic TIFF cannot hold
    the data). One writer per destination at a time is the caller's business; two racing writers
    still never mix their data (each has its own temporary file, the last commit wins).
    """

    def __init__(self, path: Path, shape: tuple[int, int, int], *, dtype: str = "uint8",
                 compression: str | None = "zlib",
                 voxel_size: tuple[float, float, float] | None = None,
                 bigtiff: bool | None = None):
        self.path = Path(path)
        self.shape = _checked_shape(shape)
        self.dtype = np.dtype(dtype)
        if self.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{self.path}: cannot write {self.dtype}; "
                             "use uint8, uint16 or float32")
        if compression in ("none", ""):
            compression = None
        if bigtiff is None:
            bigtiff = math.prod(self.shape) * self.dtype.itemsize > BIGTIFF_THRESHOLD
        self._next_z = 0
        self._target = AtomicFile(self.path)
        try:
            if compression is None:
                self._sink = _ContiguousPixels(self._target.file, self.shape, self.dtype,
                                               voxel_size, bigtiff)
            else:
                self._sink = _CompressedPages(self._target.file, self.shape, self.dtype,
                                              voxel_size, bigtiff, compression)
        except BaseException as exc:
            self._target.abort()
            _note(exc, self.path)
            raise

    @property
    def temp_path(self) -> Path:
        """Where the data lives until :meth:`commit`."""
        return self._target.temp_path

    @property
    def slices_written(self) -> int:
        return self._next_z

    @property
    def finished(self) -> bool:
        """True once committed or aborted."""
        return self._target.done

    def write_slice(self, z: int, array: np.ndarray) -> None:
        """Write slice ``z``; slices must come in order 0, 1, ..., shape[0] - 1."""
        if self._target.done:
            raise ValueError(f"{self.path}: writer already committed or aborted")
        if z != self._next_z:
            raise ValueError(f"{self.path}: slices must be written in order; expected slice "
                             f"{self._next_z}, got {z}")
        if z >= self.shape[0]:
            raise ValueError(f"{self.path}: slice {z} outside the volume's {self.shape[0]} slices")
        plane = self._coerce(array)
        try:
            self._sink.write(z, plane)
        except BaseException as exc:
            self.abort()
            _note(exc, self.path)
            raise
        self._next_z += 1

    def write_block(self, z0: int, block: np.ndarray) -> None:
        """Write ``block`` (z, y, x) as slices ``z0 .. z0 + len(block) - 1``."""
        block = np.asarray(block)
        if block.ndim != 3:
            raise ValueError(f"{self.path}: a block must be 3-D (z, y, x), got shape {block.shape}")
        for offset, plane in enumerate(block):
            self.write_slice(z0 + offset, plane)

    def commit(self) -> Path:
        """Finish the file and move it into place; an error (missing slices) aborts instead."""
        if self._target.done:
            raise ValueError(f"{self.path}: writer already committed or aborted")
        if self._next_z != self.shape[0]:
            self.abort()
            raise ValueError(f"{self.path}: only {self._next_z} of {self.shape[0]} slices were "
                             "written; the incomplete file was discarded")
        try:
            self._sink.finish()
            return self._target.commit()
        except BaseException as exc:
            self.abort()
            _note(exc, self.path)
            raise

    def abort(self) -> None:
        """Discard everything written so far; ``path`` keeps its previous content."""
        if self._target.done:
            return
        self._sink.discard()
        self._target.abort()

    def __enter__(self) -> LabelVolumeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._target.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def _coerce(self, array: np.ndarray) -> np.ndarray:
        plane = np.asarray(array)
        if plane.shape != self.shape[1:]:
            raise ValueError(f"{self.path}: slice shape {plane.shape} does not match the "
                             f"volume's {self.shape[1:]}")
        if plane.dtype == self.dtype:
            return plane
        if self.dtype.kind == "f":
            if plane.dtype.kind not in "fiub":
                raise ValueError(f"{self.path}: cannot store {plane.dtype} pixels as float32")
            return plane.astype(self.dtype)
        if plane.dtype.kind not in "iub":
            raise ValueError(f"{self.path}: cannot store {plane.dtype} pixels as {self.dtype}; "
                             "round them to integers first")
        # Class ids often arrive as int64 from argmax; accept them when every value fits.
        limits = np.iinfo(self.dtype)
        if plane.size and (plane.min() < limits.min or plane.max() > limits.max):
            raise ValueError(f"{self.path}: values {plane.min()}..{plane.max()} do not fit "
                             f"in {self.dtype}")
        return plane.astype(self.dtype)


def write_volume(path: Path, array: np.ndarray, *, compression: str | None = "zlib",
                 voxel_size: tuple[float, float, float] | None = None,
                 dtype: str | None = None) -> Path:
    """Write a whole (z, y, x) array (a 2-D array is one slice) through LabelVolumeWriter.

    ``dtype`` defaults to the array's own when that is uint8, uint16 or float32 (bool becomes
    uint8); give it explicitly for other integer arrays.
    """
    volume = np.asarray(array)
    if volume.ndim == 2:
        volume = volume[np.newaxis]
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 2-D or 3-D array, got shape {volume.shape}")
    if dtype is None:
        if volume.dtype == np.bool_:
            dtype = "uint8"
        elif volume.dtype in SUPPORTED_DTYPES:
            dtype = volume.dtype.name
        else:
            raise ValueError(f"{path}: cannot write {volume.dtype} without an explicit dtype")
    with LabelVolumeWriter(Path(path), volume.shape, dtype=dtype, compression=compression,
                           voxel_size=voxel_size) as writer:
        writer.write_block(0, volume)
    return Path(path)


def _checked_shape(shape) -> tuple[int, int, int]:
    dims = tuple(int(d) for d in shape)
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape}")
    return dims  # type: ignore[return-value]


def _note(exc: BaseException, path: Path) -> None:
    """Tell whoever sees the error which output failed and that nothing was half-written."""
    if isinstance(exc, Exception):
        exc.add_note(f"while writing {path}: the incomplete output was discarded and any "
                     "previous file there is unchanged")
