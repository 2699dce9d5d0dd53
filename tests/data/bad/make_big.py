"""Files too big to commit that the hardening tests make at test time (small on disk, huge
when believed): each function writes or returns one and is deterministic.

- :func:`big_zlib_tiff`: one 30000 x 30000 page of zeros, zlib-compressed (about 1 MB).
- :func:`big_png`: a 9000 x 9000 greyscale PNG of zeros (about 80 KB), meant for a slice of
  another size.
- :func:`many_pages_tiff`: 20000 zlib pages of 64 x 64 (a y-plane crosses every page).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

__all__ = ["big_zlib_tiff", "big_png", "many_pages_tiff"]


def big_zlib_tiff(path: Path, side: int = 30000) -> Path:
    """Write ``side`` x ``side`` zeros as one zlib page, in tifffile's default strips."""
    # np.zeros maps untouched pages to the kernel's zero page: cheap to make even at 900 MB
    tifffile.imwrite(
        path, np.zeros((side, side), np.uint8), compression="zlib", photometric="minisblack"
    )
    return path


def big_png(side: int = 9000) -> bytes:
    """The bytes of a ``side`` x ``side`` greyscale PNG of zeros."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def many_pages_tiff(path: Path, pages: int = 20000, side: int = 64) -> Path:
    """Write ``pages`` small zlib pages (a stack that cannot be memory-mapped)."""
    plane = np.arange(side * side, dtype=np.uint32).reshape(side, side).astype(np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            np.broadcast_to(plane, (pages, side, side)),
            compression="zlib",
            photometric="minisblack",
        )
    return path
