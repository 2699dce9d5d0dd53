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
from biosegment.volumes.slice_writer import SliceWriter

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
            handle,
            shape=shape,
            dtype=dtype,
            photometric="minisblack",
            returnoffset=True,
            imagej=not bigtiff,
            bigtiff=bigtiff,
            metadata=metadata,
            **resolution,
        )

    def write(self, z: int, plane: np.ndarray) -> None:
        self._handle.seek(self._offset + z * self._slice_bytes)
        self._handle.write(np.ascontiguousarray(plane).tobytes())

    def finish(self) -> None:
        self._handle.flush()

    def discard(self) -> None:
        pass


class _CompressedPages:
    """Compressed layout: one page per slice, the stack description on the first page."""

    def __init__(
        self, handle: BinaryIO, shape, dtype: np.dtype, voxel_size, bigtiff: bool, compression: str
    ):
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
        self._writer.write(
            plane,
            compression=self._compression,
            contiguous=False,
            metadata=None,
            photometric="minisblack",
            description=self._description if z == 0 else None,
            **self._resolution,
        )

    def finish(self) -> None:
        self._writer.close()

    def discard(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass


class LabelVolumeWriter(SliceWriter):
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

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int],
        *,
        dtype: str = "uint8",
        compression: str | None = "zlib",
        voxel_size: tuple[float, float, float] | None = None,
        bigtiff: bool | None = None,
    ):
        super().__init__(path, shape, dtype)
        if compression in ("none", ""):
            compression = None
        if bigtiff is None:
            bigtiff = math.prod(self.shape) * self.dtype.itemsize > BIGTIFF_THRESHOLD
        self._target = AtomicFile(self.path)
        try:
            if compression is None:
                self._sink = _ContiguousPixels(
                    self._target.file, self.shape, self.dtype, voxel_size, bigtiff
                )
            else:
                self._sink = _CompressedPages(
                    self._target.file, self.shape, self.dtype, voxel_size, bigtiff, compression
                )
        except BaseException as exc:
            self._target.abort()
            _note(exc, self.path)
            raise

    @property
    def temp_path(self) -> Path:
        """Where the data lives until :meth:`commit`."""
        return self._target.temp_path

    @property
    def finished(self) -> bool:
        """True once committed or aborted."""
        return self._target.done

    def _write_plane(self, z: int, plane: np.ndarray) -> None:
        try:
            self._sink.write(z, plane)
        except BaseException as exc:
            self.abort()
            _note(exc, self.path)
            raise

    def _complete(self) -> Path:
        try:
            self._sink.finish()
            return self._target.commit()
        except BaseException as exc:
            self.abort()
            _note(exc, self.path)
            raise

    def _throw_away(self) -> None:
        self._sink.discard()
        self._target.abort()


def write_volume(
    path: Path,
    array: np.ndarray,
    *,
    compression: str | None = "zlib",
    voxel_size: tuple[float, float, float] | None = None,
    dtype: str | None = None,
) -> Path:
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
    with LabelVolumeWriter(
        Path(path), volume.shape, dtype=dtype, compression=compression, voxel_size=voxel_size
    ) as writer:
        writer.write_block(0, volume)
    return Path(path)


def _note(exc: BaseException, path: Path) -> None:
    """Tell whoever sees the error which output failed and that nothing was half-written."""
    if isinstance(exc, Exception):
        exc.add_note(
            f"while writing {path}: the incomplete output was discarded and any "
            "previous file there is unchanged"
        )
