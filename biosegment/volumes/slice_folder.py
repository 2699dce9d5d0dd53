"""Read a folder of one image per slice: ``tifseq`` (TIFF files) and ``pngseq`` (PNG files).

Slices are the folder's image files in natural order (``z2`` before ``z10``). Probing reads the
listing and each file's header, so a folder whose slices differ in size or pixel type is
rejected before any pixels are decoded, with the first odd file named. Reading slice ``z``
decodes exactly one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from biosegment.errors import VolumeError
from biosegment.volumes.base import VolumeInfo, VolumeReader
from biosegment.volumes.failures import checked_file_size, volume_errors
from biosegment.volumes.naming import PNG_SUFFIXES, TIFF_SUFFIXES, list_image_files
from biosegment.volumes.png import decode_png, read_png_header
from biosegment.volumes.tiff_layout import (
    check_decode_units,
    check_page_geometry,
    read_tiff_layout,
)
from biosegment.volumes.tiff_stack import open_tiff_stack

__all__ = ["SliceFolderReader", "probe_slice_folder", "open_slice_folder", "SLICE_FORMATS"]


@dataclass(frozen=True, slots=True)
class _SliceHeader:
    height: int
    width: int
    dtype: np.dtype
    voxel_size: tuple[float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class _SliceFormat:
    file_type: str
    suffixes: frozenset[str]
    read_header: Callable[[Path], _SliceHeader]
    decode: Callable[[Path, str], np.ndarray]


def _tiff_slice_header(path: Path) -> _SliceHeader:
    size = checked_file_size(path)
    with volume_errors(path, "reading the TIFF header"):
        with tifffile.TiffFile(path) as tif:
            layout = read_tiff_layout(tif, path, size)
    depth, height, width = layout.shape
    if depth != 1:
        raise VolumeError(
            f"holds {depth} pages; a slice folder needs one single-page TIFF per slice", source=path
        )
    return _SliceHeader(height, width, layout.dtype, layout.voxel_size)


def _decode_tiff_slice(path: Path, where: str) -> np.ndarray:
    with volume_errors(path, "decoding the TIFF", where=where):
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            check_page_geometry(page, path, where=where)
            check_decode_units(page, path, where=where)  # the file may have changed since
            return np.asarray(page.asarray())


def _png_slice_header(path: Path) -> _SliceHeader:
    header = read_png_header(path)
    return _SliceHeader(header.height, header.width, header.dtype)


def _decode_png_slice(path: Path, where: str) -> np.ndarray:
    return decode_png(path, where=where)


#: How each slice-folder type finds, probes and decodes its files.
SLICE_FORMATS = {
    "tifseq": _SliceFormat("tifseq", TIFF_SUFFIXES, _tiff_slice_header, _decode_tiff_slice),
    "pngseq": _SliceFormat("pngseq", PNG_SUFFIXES, _png_slice_header, _decode_png_slice),
}


def _slice_files(folder: Path, form: _SliceFormat) -> list[Path]:
    files = [p for p in list_image_files(folder) if p.suffix.lower() in form.suffixes]
    if not files:
        kinds = "/".join(sorted(form.suffixes))
        raise VolumeError(f"no {kinds} slice files in the folder", source=folder)
    return files


def probe_slice_folder(folder: Path, file_type: str) -> VolumeInfo:
    """Header facts of a slice folder: every file's header is read, no pixels are decoded."""
    folder = Path(folder)
    form = SLICE_FORMATS[file_type]
    files = _slice_files(folder, form)
    first = form.read_header(files[0])
    for path in files[1:]:
        header = form.read_header(path)
        if (header.height, header.width) != (first.height, first.width):
            raise VolumeError(
                f"slice is {header.height}x{header.width} pixels but the first slice "
                f"{files[0].name} is {first.height}x{first.width}; all slices must have the "
                "same size",
                source=path,
            )
        if header.dtype != first.dtype:
            raise VolumeError(
                f"slice holds {header.dtype.name} but the first slice "
                f"{files[0].name} holds {first.dtype.name}",
                source=path,
            )
    return VolumeInfo(
        path=folder,
        file_type=file_type,
        shape=(len(files), first.height, first.width),
        dtype=first.dtype.name,
        voxel_size=first.voxel_size,
        files=tuple(files),
    )


def open_slice_folder(folder: Path, file_type: str) -> SliceFolderReader:
    """Probe a slice folder and return a reader that decodes one file per slice."""
    return SliceFolderReader(probe_slice_folder(folder, file_type))


class SliceFolderReader(VolumeReader):
    """A volume stored as one image file per slice."""

    def __init__(self, info: VolumeInfo):
        self._info = info
        self._format = SLICE_FORMATS[info.file_type]

    @property
    def info(self) -> VolumeInfo:
        return self._info

    def read_slice(self, z: int) -> np.ndarray:
        depth = self._info.shape[0]
        if not isinstance(z, (int, np.integer)) or not 0 <= z < depth:
            raise IndexError(f"slice {z} outside 0:{depth}")
        path = self._info.files[int(z)]
        where = f"slice {int(z)}"
        plane = self._format.decode(path, where)
        # The folder may have changed since probing; never hand out a wrongly shaped slice.
        if plane.shape != self._info.shape[1:]:
            raise VolumeError(
                f"slice is {plane.shape[0]}x{plane.shape[1]} pixels but the volume "
                f"is {self._info.shape[1]}x{self._info.shape[2]}",
                source=path,
                where=where,
            )
        if plane.dtype != self.dtype:
            raise VolumeError(
                f"slice holds {plane.dtype} but the volume holds {self.dtype}",
                source=path,
                where=where,
            )
        return plane

    def read_block(
        self, z0: int, z1: int, y: slice | None = None, x: slice | None = None
    ) -> np.ndarray:
        if self._info.file_type != "tifseq" or (y is None and x is None) or z0 == z1:
            return super().read_block(z0, z1, y, x)
        depth = self._info.shape[0]
        if not (0 <= z0 <= z1 <= depth):
            raise IndexError(f"z range {z0}:{z1} outside 0:{depth}")
        # A window of TIFF slices: each file decodes only the strips or tiles the window
        # covers (or is memory-mapped), so a tile of huge slices never costs whole slices.

        planes = []
        for z in range(z0, z1):
            path = self._info.files[z]
            with open_tiff_stack(path) as one:
                if one.shape != (1, *self._info.shape[1:]) or one.dtype != self.dtype:
                    raise VolumeError(
                        f"slice is {one.shape[1]}x{one.shape[2]} {one.dtype} but "
                        f"the volume is {self._info.shape[1]}x"
                        f"{self._info.shape[2]} {self.dtype}",
                        source=path,
                        where=f"slice {z}",
                    )
                planes.append(one.read_block(0, 1, y, x)[0])
        return np.stack(planes)
