"""Read a multi-page TIFF (``tif3d``) or a single-page TIFF (``tif2d``) slice by slice.

Stacks whose pixels form one uncompressed block are memory-mapped, so a slice or a y/x window
costs exactly the bytes it covers. Any other TIFF (compressed, tiled, pages scattered through
the file) is read page by page, and a y/x window of a page decodes only the strips or tiles it
covers; rows of uncompressed strips are read straight from the file, however tall the strip.
A compressed strip or tile too large to decode within ``limits.max_decode_mb`` is refused when
the file is opened. Opening reads headers only; see :mod:`biosegment.volumes.tiff_layout`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import tifffile

from biosegment.errors import VolumeError
from biosegment.volumes.base import VolumeInfo, VolumeReader
from biosegment.volumes.failures import checked_file_size, volume_errors
from biosegment.volumes.limits import check_decode_unit
from biosegment.volumes.tiff_layout import (
    TiffLayout,
    check_decode_units,
    check_page_geometry,
    read_tiff_layout,
    reads_raw_rows,
)

__all__ = ["TiffStackReader", "probe_tiff_stack", "open_tiff_stack"]


def _open_tiff(path: Path) -> tuple[tifffile.TiffFile, TiffLayout]:
    size = checked_file_size(path)
    tif = None
    try:
        with volume_errors(path, "reading the TIFF header"):
            tif = tifffile.TiffFile(path)
            layout = read_tiff_layout(tif, path, size)
    except BaseException:
        if tif is not None:
            tif.close()
        raise
    return tif, layout


def _info(path: Path, layout: TiffLayout) -> VolumeInfo:
    file_type = "tif2d" if layout.shape[0] == 1 else "tif3d"
    return VolumeInfo(
        path=path,
        file_type=file_type,
        shape=layout.shape,
        dtype=layout.dtype.name,
        voxel_size=layout.voxel_size,
        files=(path,),
    )


def probe_tiff_stack(path: Path) -> VolumeInfo:
    """Header facts of a TIFF file; reads no pixel data."""
    path = Path(path)
    tif, layout = _open_tiff(path)
    tif.close()
    return _info(path, layout)


def open_tiff_stack(path: Path) -> TiffStackReader:
    """Open a TIFF file for lazy reading (memory-mapped when its pixels are one block)."""
    path = Path(path)
    tif, layout = _open_tiff(path)
    if layout.is_contiguous:
        tif.close()
        return TiffStackReader(_info(path, layout), layout, tif=None)
    return TiffStackReader(_info(path, layout), layout, tif=tif)


def _segments_covering(
    page, height: int, width: int, rows: np.ndarray, cols: np.ndarray
) -> list[int] | None:
    """Indices of the strips or tiles of ``page`` that hold the given rows and columns.

    None when the page is not one plane of single-sample strips or tiles (then the caller
    decodes it whole).
    """
    if int(getattr(page, "planarconfig", 1) or 1) != 1 and int(page.samplesperpixel or 1) > 1:
        return None
    count = len(page.dataoffsets)
    if page.is_tiled:
        tile_rows, tile_cols = int(page.tilelength), int(page.tilewidth)
        across = -(-width // tile_cols)
        if count != across * -(-height // tile_rows) or int(page.tiledepth or 1) != 1:
            return None
        wanted_rows = np.unique(rows // tile_rows)
        wanted_cols = np.unique(cols // tile_cols)
        return [int(r) * across + int(c) for r in wanted_rows for c in wanted_cols]
    per_strip = min(int(page.rowsperstrip or height), height)
    if count != -(-height // per_strip):
        return None
    return [int(i) for i in np.unique(rows // per_strip)]


class TiffStackReader(VolumeReader):
    """A TIFF stack; built by :func:`open_tiff_stack`, which decides how slices are read."""

    def __init__(self, info: VolumeInfo, layout: TiffLayout, *, tif: tifffile.TiffFile | None):
        self._info = info
        self._layout = layout
        self._tif = tif
        # tifffile shares one file position between all pages; reads must not interleave.
        self._lock = threading.Lock()
        self._memmap: np.memmap | None = None
        self._mapped_file = None
        if tif is None:
            assert layout.data_offset is not None
            self._mapped_end = layout.data_offset + info.nbytes
            with volume_errors(info.path, "memory-mapping the TIFF"):
                self._mapped_file = open(info.path, "rb")  # noqa: SIM115 - closed in close()
                try:
                    self._memmap = np.memmap(
                        self._mapped_file,
                        dtype=layout.file_dtype,
                        mode="r",
                        offset=layout.data_offset,
                        shape=layout.shape,
                    )
                except BaseException:
                    self._mapped_file.close()
                    raise

    @property
    def info(self) -> VolumeInfo:
        return self._info

    @property
    def is_memory_mapped(self) -> bool:
        return self._memmap is not None

    def _check_z(self, z: int) -> int:
        depth = self._info.shape[0]
        if not isinstance(z, (int, np.integer)) or not 0 <= z < depth:
            raise IndexError(f"slice {z} outside 0:{depth}")
        return int(z)

    def read_slice(self, z: int) -> np.ndarray:
        z = self._check_z(z)
        if self._memmap is not None:
            return self._from_memmap(np.s_[z])
        return self._decode_page(z)

    def read_block(
        self, z0: int, z1: int, y: slice | None = None, x: slice | None = None
    ) -> np.ndarray:
        depth = self._info.shape[0]
        if not (0 <= z0 <= z1 <= depth):
            raise IndexError(f"z range {z0}:{z1} outside 0:{depth}")
        ys = y if y is not None else slice(None)
        xs = x if x is not None else slice(None)
        if self._memmap is not None:
            return self._from_memmap(np.s_[z0:z1, ys, xs])
        if (y is None and x is None) or z0 == z1 or (ys.step or 1) < 0 or (xs.step or 1) < 0:
            return super().read_block(z0, z1, y, x)
        # A window of a compressed page: decode only the strips or tiles it covers, so a tile
        # of a 30000 x 30000 slice costs a few strips of memory, not the whole slice.
        return np.stack([self._decode_window(z, ys, xs) for z in range(z0, z1)])

    def _from_memmap(self, index) -> np.ndarray:
        memmap, handle = self._memmap, self._mapped_file
        if memmap is None or handle is None or handle.closed:
            raise ValueError(f"{self._info.path} is closed")
        # Touching a mapped page past the end of a file that shrank (a copy tool overwriting
        # it in place) kills the process with SIGBUS, so check the size before every read.
        # Atomic replacement is harmless: the map keeps the old file alive.
        if os.fstat(handle.fileno()).st_size < self._mapped_end:
            raise VolumeError(
                "file shrank since it was opened (is it being overwritten?); open it again",
                source=self._info.path,
            )
        with volume_errors(self._info.path, "reading the memory-mapped TIFF"):
            # np.array copies (and fixes byte order), so no caller holds on to the map.
            return np.array(memmap[index], dtype=self._layout.dtype)

    def _decode_page(self, z: int) -> np.ndarray:
        path = self._info.path
        where = f"page {z}"
        with self._lock:
            if self._tif is None:
                raise ValueError(f"{path} is closed")
            with volume_errors(path, "decoding the TIFF page", where=where):
                page = self._tif.pages[z]
                keyframe = getattr(page, "keyframe", page)
                check_page_geometry(
                    keyframe,
                    path,
                    where=where,
                    expected=self._info.shape[1:],
                    expected_dtype=self._layout.dtype,
                )
                check_decode_units(keyframe, path, where=where)
                plane = np.asarray(page.asarray()).reshape(self._info.shape[1:])
        return plane.astype(self._layout.dtype, copy=False)

    def _decode_window(self, z: int, ys: slice, xs: slice) -> np.ndarray:
        height, width = self._info.shape[1:]
        rows = np.arange(*ys.indices(height))
        cols = np.arange(*xs.indices(width))
        out = np.zeros((rows.size, cols.size), dtype=self._layout.dtype)
        if not rows.size or not cols.size:
            return out
        path = self._info.path
        where = f"page {z}"
        with self._lock:
            if self._tif is None:
                raise ValueError(f"{path} is closed")
            with volume_errors(path, "decoding the TIFF page", where=where):
                # a light frame (offsets only) instead of a fully parsed page: a y-plane of a
                # 20000-page stack touches every page, and parsing each costs ten times more
                pages = self._tif.pages
                previous = pages.useframes
                pages.useframes = True
                try:
                    page = pages[z]
                finally:
                    pages.useframes = previous
                keyframe = getattr(page, "keyframe", page)
                check_page_geometry(
                    keyframe,
                    path,
                    where=where,
                    expected=(height, width),
                    expected_dtype=self._layout.dtype,
                )
                check_decode_units(keyframe, path, where=where)
                segments = _segments_covering(keyframe, height, width, rows, cols)
                handle = self._tif.filehandle
                if segments is not None and reads_raw_rows(keyframe):
                    self._read_raw_rows(handle, page, keyframe, segments, rows, cols, out, where)
                    return out
                if segments is None:  # an unusual layout: decode the page, then cut
                    itemsize = self._layout.dtype.itemsize
                    check_decode_unit("page", height, width, itemsize, path, where=where)
                    plane = np.asarray(page.asarray()).reshape(height, width)
                    return plane[np.ix_(rows, cols)].astype(self._layout.dtype, copy=False)
                for index in segments:
                    offset, count = page.dataoffsets[index], page.databytecounts[index]
                    if not count:
                        continue  # a segment never written reads as zeros
                    handle.seek(offset)
                    data = handle.read(count)
                    if len(data) != count:
                        raise VolumeError(
                            f"truncated: segment {index} needs {count} bytes at offset {offset}",
                            source=path,
                            where=where,
                        )
                    segment, start, _ = page.decode(data, index)
                    if segment is None:
                        continue
                    pixels = np.asarray(segment).reshape(segment.shape[-3], segment.shape[-2])
                    y0, x0 = int(start[-3]), int(start[-2])
                    in_rows = (rows >= y0) & (rows < y0 + pixels.shape[0])
                    in_cols = (cols >= x0) & (cols < x0 + pixels.shape[1])
                    out[np.ix_(in_rows, in_cols)] = pixels[
                        np.ix_(rows[in_rows] - y0, cols[in_cols] - x0)
                    ]
        return out

    def _read_raw_rows(
        self,
        handle,
        page,
        keyframe,
        strips: list[int],
        rows: np.ndarray,
        cols: np.ndarray,
        out: np.ndarray,
        where: str,
    ) -> None:
        """Fill ``out`` with the wanted pixels of an uncompressed page, row by row.

        Only the bytes between the first and last wanted column of each wanted row are read,
        so a tile of a page stored as one huge strip costs the tile, not the strip.
        """
        height = self._info.shape[1]
        width = self._info.shape[2]
        per_strip = min(int(keyframe.rowsperstrip or height), height)
        item = self._layout.file_dtype.itemsize
        first_col, last_col = int(cols[0]), int(cols[-1])
        span = (last_col - first_col + 1) * item
        picked = cols - first_col
        for strip in strips:
            offset, count = page.dataoffsets[strip], page.databytecounts[strip]
            if not count:
                continue  # a strip never written reads as zeros
            top = strip * per_strip
            for out_row in np.flatnonzero((rows >= top) & (rows < top + per_strip)):
                start = ((int(rows[out_row]) - top) * width + first_col) * item
                if start + span > count:
                    raise VolumeError(
                        f"truncated: strip {strip} holds {count} bytes but row "
                        f"{int(rows[out_row])} needs bytes up to {start + span}",
                        source=self._info.path,
                        where=where,
                    )
                handle.seek(offset + start)
                data = handle.read(span)
                if len(data) != span:
                    raise VolumeError(
                        f"truncated: strip {strip} needs {count} bytes at offset {offset}",
                        source=self._info.path,
                        where=where,
                    )
                line = np.frombuffer(data, dtype=self._layout.file_dtype)
                out[out_row] = line[picked]

    def close(self) -> None:
        with self._lock:
            if self._tif is not None:
                self._tif.close()
                self._tif = None
        # Dropping the reference unmaps once no slice view is in use; closing the mmap
        # explicitly would fail (or crash a reader) while another thread still copies from it.
        self._memmap = None
        if self._mapped_file is not None:
            self._mapped_file.close()
            self._mapped_file = None
