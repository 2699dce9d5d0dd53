"""Cut a plane into the 512x512 tiles of a zoom pyramid and encode them as PNG.

Level 0 is full resolution; level ``L`` shows every ``2**L``-th pixel, so the whole of an 8k x 8k
slice fits in a handful of tiles when zoomed out and the browser never holds more pixels than the
screen shows. Tiles at the right and bottom edges are smaller than 512. Planes arrive already
subsampled to the tile's level (a strided read), so cutting a tile copies only the tile. Tiles are
PNG (lossless, which
label tiles need: their grey levels are class ids), written here directly with no row filters:
label tiles compress ~30x at zlib level 1 in about a millisecond, while EM noise hardly
compresses at all (about 10 %) and costs 20 ms or more to try, so raw tiles are stored
uncompressed and take a fraction of a millisecond.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from biosegment.webui.errors import ApiError

__all__ = [
    "TILE_SIZE",
    "TileAddress",
    "level_count",
    "check_address",
    "cut_tile",
    "encode_png",
    "pyramid",
]

TILE_SIZE = 512


@dataclass(frozen=True, slots=True)
class TileAddress:
    """Tile ``(row, col)`` of zoom ``level`` of a plane."""

    level: int
    row: int
    col: int

    @property
    def step(self) -> int:
        return 2**self.level


def level_count(height: int, width: int) -> int:
    """Levels needed until the whole plane fits one tile (at least 1)."""
    longest = max(height, width, 1)
    return max(1, math.ceil(math.log2(longest / TILE_SIZE)) + 1) if longest > TILE_SIZE else 1


def pyramid(height: int, width: int) -> list[dict]:
    """Size in pixels and tiles of every level, for the viewer to plan its requests."""
    levels = []
    for level in range(level_count(height, width)):
        step = 2**level
        h, w = math.ceil(height / step), math.ceil(width / step)
        levels.append(
            {
                "level": level,
                "height": h,
                "width": w,
                "rows": math.ceil(h / TILE_SIZE),
                "cols": math.ceil(w / TILE_SIZE),
            }
        )
    return levels


def check_address(height: int, width: int, address: TileAddress) -> None:
    """404 naming the level or tile when ``address`` is outside a ``height x width`` plane."""
    levels = level_count(height, width)
    if not 0 <= address.level < levels:
        raise ApiError(404, f"level {address.level} is outside 0..{levels - 1}", field="level")
    span = TILE_SIZE * address.step
    if (
        address.row < 0
        or address.col < 0
        or address.row * span >= height
        or address.col * span >= width
    ):
        raise ApiError(
            404, f"tile {address.row}/{address.col} is outside level {address.level}", field="tile"
        )


def cut_tile(plane_at_level: np.ndarray, address: TileAddress) -> np.ndarray:
    """The pixels of one tile (a C-contiguous copy) from a plane already at the tile's level."""
    y0, x0 = address.row * TILE_SIZE, address.col * TILE_SIZE
    return np.ascontiguousarray(plane_at_level[y0 : y0 + TILE_SIZE, x0 : x0 + TILE_SIZE])


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: np.ndarray, *, compress: bool = True) -> bytes:
    """A (rows, cols) uint8 array as an 8-bit greyscale PNG.

    ``compress=False`` stores the pixels (zlib level 0): right for noisy raw images, where
    compression saves little and costs much; label tiles compress well and fast.
    """
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 array, got {pixels.ndim}-D {pixels.dtype}")
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # filter byte 0 ("none") per row
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(rows.tobytes(), 1 if compress else 0)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
