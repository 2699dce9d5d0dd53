"""The regions a click fills in the annotation editor, computed from one slice.

Two fills follow structure rather than single grey levels (EM texture makes a grey-level flood
either a speck or a flood of speckles):

* :func:`connected_object` ("take this object"): the 4-connected pixels around the click that
  have the clicked pixel's class id in a label plane (a segmentation or the live layer), so a
  person accepts what the model got right with one click;
* :func:`edge_region` ("follows edges"): the watershed basin that holds the click, in the
  Gaussian-smoothed grey levels of a window around it turned upside down, so the dark membranes
  of EM are the ridges between basins; basins start at the h-minima of that relief (a dip
  shallower than :data:`EDGE_DEPTH` grey levels does not start one, so the texture inside a
  cell does not split it). This method and its parameters were chosen by measurement on ISBI
  2012 and NeuroProof slices against the Sobel-edge watershed, Felzenszwalb and SLIC
  superpixels (``benchmarks/bench_fills.py``). It suits images whose boundaries are darker
  than what they enclose (stained EM); the grey-level fill remains for others.

Both work on one slice and bound their memory before work starts: a label plane larger than
:data:`MAX_PLANE_PIXELS` is refused, the edge window is at most :data:`EDGE_WINDOW` pixels a
side, and a region larger than :data:`MAX_REGION_PIXELS` is refused rather than painted. A
region is answered as runs over the slice's row-major pixel indices (start, length), which the
editor applies as one undoable stroke and saves the normal way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import gaussian
from skimage.measure import label as connected_labels
from skimage.morphology import h_minima
from skimage.segmentation import flood, watershed

from biosegment.errors import InputError

__all__ = [
    "MAX_PLANE_PIXELS",
    "MAX_REGION_PIXELS",
    "EDGE_WINDOW",
    "EDGE_SIGMA",
    "EDGE_DEPTH",
    "Region",
    "RegionTooLarge",
    "connected_object",
    "edge_window",
    "edge_region",
    "edge_basins",
    "pixel_runs",
]

#: Label planes up to this many pixels are read whole for "take this object" (16 MB of ids).
MAX_PLANE_PIXELS = 4096 * 4096
#: The most pixels one click may fill (4 MB in the editor); a bigger region is refused.
MAX_REGION_PIXELS = 2**22
#: The edge fill looks at most this many pixels a side around the click.
EDGE_WINDOW = 1024
#: Gaussian smoothing (pixels) before the basins are taken.
EDGE_SIGMA = 2.0
#: Dips shallower than this many display grey levels do not start a basin of their own.
EDGE_DEPTH = 20.0


class RegionTooLarge(InputError):
    """The region under the click is larger than one click may fill."""


@dataclass(frozen=True, slots=True)
class Region:
    """A filled region: a boolean ``mask`` whose top-left pixel is ``(top, left)`` in the slice."""

    mask: np.ndarray
    top: int
    left: int

    @property
    def pixels(self) -> int:
        return int(np.count_nonzero(self.mask))


def _refuse_large(pixels: int, what: str) -> None:
    if pixels > MAX_REGION_PIXELS:
        raise RegionTooLarge(
            f"{what} has {pixels} pixels, more than the {MAX_REGION_PIXELS} one click may fill; "
            "paint it with the brush, or fill smaller parts",
            where="y",
        )


def connected_object(labels: np.ndarray, y: int, x: int) -> Region:
    """The 4-connected pixels of ``labels`` (one slice of class ids) that share the class id
    at ``(y, x)``."""
    if labels.size > MAX_PLANE_PIXELS:
        raise InputError(
            f"the slice has {labels.size} pixels; taking an object reads slices of at most "
            f"{MAX_PLANE_PIXELS}",
            where="z",
        )
    mask = flood(labels, (y, x), connectivity=1)
    _refuse_large(int(np.count_nonzero(mask)), f"the object of class {int(labels[y, x])}")
    return Region(mask, 0, 0)


def edge_window(
    height: int, width: int, y: int, x: int, bounds: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int]:
    """The part of the slice the edge fill may look at and fill: ``bounds`` (the part on
    screen, ``top, left, bottom, right`` inclusive) or the whole slice, cut to at most
    :data:`EDGE_WINDOW` pixels a side centred on the click. Returns ``top, left, bottom,
    right`` (inclusive)."""
    top, left, bottom, right = bounds if bounds is not None else (0, 0, height - 1, width - 1)
    top, left = max(0, top), max(0, left)
    bottom, right = min(height - 1, bottom), min(width - 1, right)
    if not (top <= y <= bottom and left <= x <= right):
        raise InputError(f"the click ({y}, {x}) is outside the bounds", where="bounds")
    half = EDGE_WINDOW // 2
    top, bottom = _centre(top, bottom, y, half)
    left, right = _centre(left, right, x, half)
    return top, left, bottom, right


def _centre(low: int, high: int, at: int, half: int) -> tuple[int, int]:
    """``low..high`` cut to at most ``2 * half`` values, around ``at`` where it is cut."""
    if high - low + 1 <= 2 * half:
        return low, high
    start = min(max(low, at - half), high - 2 * half + 1)
    return start, start + 2 * half - 1


def edge_region(grey: np.ndarray, y: int, x: int, *, top: int = 0, left: int = 0) -> Region:
    """The basin holding ``(y, x)`` (slice coordinates) of the watershed of the smoothed,
    inverted grey levels (0..255 display levels); ``grey`` is the window of the slice whose
    top-left pixel is ``(top, left)``."""
    basins = edge_basins(grey)
    mask = basins == basins[y - top, x - left]
    _refuse_large(int(np.count_nonzero(mask)), "the region under the click")
    return Region(mask, top, left)


def edge_basins(grey: np.ndarray) -> np.ndarray:
    """The watershed basins (labels from 1) of the smoothed, inverted grey levels of ``grey``."""
    relief = 255.0 - gaussian(grey.astype(np.float32), EDGE_SIGMA, preserve_range=True)
    markers = connected_labels(h_minima(relief, EDGE_DEPTH), connectivity=1)
    return watershed(relief, markers, connectivity=1)


def pixel_runs(region: Region, width: int) -> list[int]:
    """The region as ``[start, length, start, length, ...]`` over the row-major pixel indices
    of a slice ``width`` pixels wide."""
    mask = region.mask
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, ends = np.nonzero(steps == -1)
    first = (rows + region.top) * width + starts + region.left
    runs = np.empty(2 * len(first), dtype=np.int64)
    runs[0::2], runs[1::2] = first, ends - starts
    return runs.tolist()
