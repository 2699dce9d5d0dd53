"""Cut a plane into the 512x512 tiles of a zoom pyramid and encode them as PNG.

Level 0 is full resolution; level ``L`` shows every ``2**L``-th pixel, so the whole of an 8k x 8k
slice fits in a handful of tiles when zoomed out and the browser never holds more pixels than the
screen shows. Tiles at the right and bottom edges are smaller than 512. Subsampling is a strided
view of the cached plane, so cutting a tile copies only the tile; PNG with the fastest zlib level
keeps encoding near a millisecond while staying lossless, which label tiles need (their grey
levels are class ids).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from biosegment.webui.errors import ApiError

__all__ = ["TILE_SIZE", "TileAddress", "level_count", "cut_tile", "encode_png", "pyramid"]

TILE_SIZE = 512


@dataclass(frozen=True, slots=True)
class TileAddress:
    """Tile ``(row, col)`` of zoom ``level`` of a plane."""

    level: int
    row: int
    col: int

    @property
    def step(self) -> int:
        return 2 ** self.level


def level_count(height: int, width: int) -> int:
    """Levels needed until the whole plane fits one tile (at least 1)."""
    longest = max(height, width, 1)
    return max(1, math.ceil(math.log2(longest / TILE_SIZE)) + 1) if longest > TILE_SIZE else 1


def pyramid(height: int, width: int) -> list[dict]:
    """Size in pixels and tiles of every level, for the viewer to plan its requests."""
    levels = []
    for level in range(level_count(height, width)):
        step = 2 ** level
        h, w = math.ceil(height / step), math.ceil(width / step)
        levels.append({"level": level, "height": h, "width": w,
                       "rows": math.ceil(h / TILE_SIZE), "cols": math.ceil(w / TILE_SIZE)})
    return levels


def cut_tile(plane: np.ndarray, address: TileAddress) -> np.ndarray:
    """The pixels of one tile (a copy, C-contiguous); 404 when the tile is outside the plane."""
    height, width = plane.shape
    levels = level_count(height, width)
    if not 0 <= address.level < levels:
        raise ApiError(404, f"level {address.level} is outside 0..{levels - 1}", field="level")
    step = address.step
    span = TILE_SIZE * step
    y0, x0 = address.row * span, address.col * span
    if address.row < 0 or address.col < 0 or y0 >= height or x0 >= width:
        raise ApiError(404, f"tile {address.row}/{address.col} is outside level {address.level}",
                       field="tile")
    return np.ascontiguousarray(plane[y0:min(y0 + span, height):step,
                                      x0:min(x0 + span, width):step])


def encode_png(pixels: np.ndarray) -> bytes:
    """Greyscale uint8 array to PNG bytes (fast zlib level: tiles are made on every request)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=None).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
