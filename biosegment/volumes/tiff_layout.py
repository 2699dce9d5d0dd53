"""Work out from a TIFF's headers where its slices are, without reading any pixels.

A multi-page TIFF holds one slice per page. ImageJ, OME-TIFF writers and tifffile record the
stack shape in the first page's description and usually store all pixel data as one
contiguous block: then the stack can be memory-mapped and the page chain need not be walked
at all (a file of thousands of pages probes in the time it takes to read one header). Other
files are indexed by walking the chain of page offsets, which reads a few bytes per page and
decodes no tags. Either way the byte ranges are checked against the file size, so a
truncated file is reported at probe time, and so is a compressed strip or tile too large to
decode within ``limits.max_decode_mb`` (see :func:`check_decode_units`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from biosegment.errors import VolumeError
from biosegment.volumes.failures import checked_dtype, multichannel_error
from biosegment.volumes.limits import check_decode_unit
from biosegment.volumes.ome import OmeStack, read_ome_stack
from biosegment.volumes.voxel_size import voxel_size_from_tiff

__all__ = [
    "TiffLayout",
    "read_tiff_layout",
    "check_page_geometry",
    "check_decode_units",
    "reads_raw_rows",
]


@dataclass(frozen=True, slots=True)
class TiffLayout:
    """Where a TIFF stack's slices are and what they hold."""

    shape: tuple[int, int, int]  #: (z, y, x)
    dtype: np.dtype  #: native byte order
    file_dtype: np.dtype  #: byte order as stored
    data_offset: int | None  #: start of one contiguous (z, y, x) block
    voxel_size: tuple[float, float, float] | None

    @property
    def is_contiguous(self) -> bool:
        return self.data_offset is not None


def read_tiff_layout(tif: tifffile.TiffFile, path: Path, file_size: int) -> TiffLayout:
    """Inspect an open TIFF's first page (and at most a few others) and return its layout.

    Raises :class:`VolumeError` naming ``path`` for multichannel, unsupported pixel types,
    inconsistent pages and pixel data that would lie past the end of the file.
    """
    first = tif.pages.first
    height, width = check_page_geometry(first, path, where="page 0")
    dtype = checked_dtype(first.dtype, path, where="page 0", described_as=_describe_type(first))
    file_dtype = np.dtype(tif.byteorder + dtype.char) if dtype.itemsize > 1 else dtype
    slice_bytes = height * width * dtype.itemsize
    _check_extents(first, path, file_size, "page 0")
    check_decode_units(first, path, where="page 0")
    ome = read_ome_stack(first.description) if tif.is_ome else None
    if ome is not None:
        voxel_size = ome.voxel_size
        declared = _ome_depth(ome, path)
    else:
        voxel_size = voxel_size_from_tiff(_resolution_tags(first), _calibration_metadata(tif))
        declared = _declared_depth(tif, path, (height, width))
    if declared is not None and first.is_final:
        start = first.dataoffsets[0]
        if declared == 1 or _second_page_follows_data(tif, start + slice_bytes):
            needed = start + declared * slice_bytes
            if needed > file_size:
                raise VolumeError(
                    f"truncated: the header declares {declared} slices of {height}x{width} "
                    f"{dtype.name}, which need {needed} bytes, but the file has {file_size}",
                    source=path,
                )
            return TiffLayout((declared, height, width), dtype, file_dtype, start, voxel_size)

    # Walking the page chain reads each page's offset only; tifffile logs (not raises) a
    # chain that points past the end of the file, which volume_errors turns into an error.
    page_count = len(tif.pages)
    depth = page_count
    if declared is not None:
        if page_count < declared:
            raise VolumeError(
                f"truncated: the header declares {declared} slices but the file "
                f"holds only {page_count} pages",
                source=path,
            )
        depth = declared
    data_offset = None
    if depth > 1:
        last = tif.pages[depth - 1]
        check_page_geometry(
            last, path, where=f"page {depth - 1}", expected=(height, width), expected_dtype=dtype
        )
        _check_extents(last, path, file_size, f"page {depth - 1}")
        check_decode_units(last, path, where=f"page {depth - 1}")
        if (
            first.is_final
            and last.is_final
            and last.dataoffsets[0] == first.dataoffsets[0] + (depth - 1) * slice_bytes
            and _second_page_follows_data(tif, first.dataoffsets[0] + slice_bytes)
        ):
            data_offset = first.dataoffsets[0]
    elif first.is_final:
        data_offset = first.dataoffsets[0]
    return TiffLayout((depth, height, width), dtype, file_dtype, data_offset, voxel_size)


def check_page_geometry(
    page,
    path: Path,
    *,
    where: str,
    expected: tuple[int, int] | None = None,
    expected_dtype: np.dtype | None = None,
) -> tuple[int, int]:
    """Return a page's (height, width); raise VolumeError if it is not one greyscale plane."""
    samples = int(getattr(page, "samplesperpixel", 1) or 1)
    if samples > 1:
        raise multichannel_error(path, f"{samples} samples per pixel", where=where)
    if int(getattr(page, "imagedepth", 1) or 1) > 1:
        raise VolumeError(
            "volumetric TIFF pages (ImageDepth > 1) are not supported; save one page per slice",
            source=path,
            where=where,
        )
    height, width = int(page.imagelength), int(page.imagewidth)
    if height < 1 or width < 1:
        raise VolumeError(
            f"page claims {height}x{width} pixels: corrupt or truncated file",
            source=path,
            where=where,
        )
    if expected is not None and (height, width) != expected:
        raise VolumeError(
            f"page is {height}x{width} but the first page is "
            f"{expected[0]}x{expected[1]}; all slices must have the same size",
            source=path,
            where=where,
        )
    if expected_dtype is not None:
        dtype = checked_dtype(page.dtype, path, where=where, described_as=_describe_type(page))
        if dtype != expected_dtype:
            raise VolumeError(
                f"page holds {dtype.name} but the first page holds {expected_dtype.name}",
                source=path,
                where=where,
            )
    return height, width


def reads_raw_rows(page) -> bool:
    """True when ``page``'s rows can be read straight from the file, with no decoding.

    That is an uncompressed page stored in strips of whole bytes per pixel: any row (or part
    of a row) of it is a plain byte range, however many rows a strip holds.
    """
    return (
        not page.is_tiled
        and int(getattr(page, "compression", 1) or 1) == 1
        and int(getattr(page, "predictor", 1) or 1) == 1
        and int(getattr(page, "fillorder", 1) or 1) == 1
        and int(getattr(page, "bitspersample", 0) or 0) == 8 * np.dtype(page.dtype).itemsize
    )


def check_decode_units(page, path: Path, *, where: str) -> None:
    """Refuse a page whose strips or tiles each unpack to more than ``limits.max_decode_mb``.

    Such a unit is decoded whole whatever part of it is read; uncompressed strips are exempt,
    since their rows are read one by one (:func:`reads_raw_rows`).
    """
    if reads_raw_rows(page):
        return
    height, width = int(page.imagelength), int(page.imagewidth)
    itemsize = np.dtype(page.dtype).itemsize if page.dtype is not None else 1
    if page.is_tiled:
        rows, cols, kind = int(page.tilelength), int(page.tilewidth), "tile"
    else:
        rows, cols, kind = min(int(page.rowsperstrip or height), height), width, "strip"
    check_decode_unit(kind, rows, cols, itemsize, path, where=where)


def _describe_type(page) -> str:
    bits = getattr(page, "bitspersample", "?")
    kind = {1: "unsigned integer", 2: "signed integer", 3: "float"}.get(
        int(getattr(page, "sampleformat", 1) or 1), "unusual"
    )
    return f"{bits}-bit {kind}"


def _check_extents(page, path: Path, file_size: int, where: str) -> None:
    ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
    if not ends:
        raise VolumeError("page has no pixel data", source=path, where=where)
    if max(ends) > file_size:
        raise VolumeError(
            f"truncated: pixel data run to byte {max(ends)} but the file has {file_size}",
            source=path,
            where=where,
        )
    # An uncompressed page must hold every pixel it declares; a few bytes declaring
    # gigapixels (a "TIFF bomb") would otherwise probe as a valid, enormous volume.
    if int(getattr(page, "compression", 1) or 1) == 1:
        bits = int(getattr(page, "bitspersample", 8) or 8)
        needed = int(page.imagelength) * int(page.imagewidth) * max(1, (bits + 7) // 8)
        held = sum(page.databytecounts)
        if held < needed:
            raise VolumeError(
                f"truncated: the page declares {page.imagelength}x"
                f"{page.imagewidth} pixels ({needed} bytes) but its pixel data "
                f"hold {held} bytes",
                source=path,
                where=where,
            )


def _resolution_tags(page) -> dict:
    tags = {}
    for name in ("XResolution", "YResolution"):
        tag = page.tags.get(name)
        if tag is not None:
            tags[name] = tag.value
    return tags


def _calibration_metadata(tif: tifffile.TiffFile) -> dict | None:
    """ImageJ metadata, or tifffile's JSON description (our BigTIFF output uses the same keys)."""
    if tif.is_imagej:
        return tif.imagej_metadata
    if tif.is_shaped and tif.shaped_metadata:
        return tif.shaped_metadata[0]
    return None


def _ome_depth(ome: OmeStack, path: Path) -> int:
    if ome.size_c > 1:
        raise multichannel_error(path, f"{ome.size_c} OME channels")
    if ome.size_z > 1 and ome.size_t > 1:
        raise VolumeError(
            f"OME-TIFF with {ome.size_t} time points of {ome.size_z} slices; "
            "only one 3-D stack per file is supported",
            source=path,
        )
    return ome.size_z * ome.size_t


def _declared_depth(tif: tifffile.TiffFile, path: Path, plane: tuple[int, int]) -> int | None:
    """Number of slices an ImageJ or tifffile description declares, if it declares one."""
    imagej = tif.imagej_metadata if tif.is_imagej else None
    if imagej:
        channels = int(imagej.get("channels", 1) or 1)
        slices = int(imagej.get("slices", 1) or 1)
        frames = int(imagej.get("frames", 1) or 1)
        if channels > 1:
            # tifffile, unless told the axes, labels any greyscale stack "channels=N"
            # (the ISBI 2012 files are such): with no slices, no frames and no colour
            # display mode those pages are a z stack. Real channels come as a hyperstack
            # with slices or frames, or shown as "composite"/"color".
            mode = str(imagej.get("mode", "grayscale")).lower()
            if slices > 1 or frames > 1 or mode in ("composite", "color"):
                raise multichannel_error(path, f"{channels} ImageJ channels")
            slices = channels
        if slices > 1 and frames > 1:
            raise VolumeError(
                f"ImageJ hyperstack with {frames} time points of {slices} slices; "
                "only one 3-D stack per file is supported",
                source=path,
            )
        depth = slices * frames
        if depth == 1:
            depth = int(imagej.get("images", 1) or 1)
        return depth if depth >= 1 else None
    if tif.is_shaped:
        shaped = tif.shaped_metadata
        shape = shaped[0].get("shape") if shaped else None
        if isinstance(shape, list) and len(shape) >= 2 and tuple(shape[-2:]) == plane:
            depth = math.prod(int(s) for s in shape[:-2])
            return depth if depth >= 1 else None
    return None


def _second_page_follows_data(tif: tifffile.TiffFile, second_slice_start: int) -> bool:
    """True when the page chain does not break the data block after the first slice.

    Either the file has a single page (ImageJ stores big stacks as one page plus data), or
    the second page's pixels start exactly where the first slice ends.
    """
    try:
        second = tif.pages[1]
    except IndexError:
        return True
    return bool(second.dataoffsets) and second.dataoffsets[0] == second_slice_start
