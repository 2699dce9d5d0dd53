"""Where sliding windows go, and how much each one counts where windows overlap.

Pure arithmetic on sizes, shared by inference planning and its tests: the start positions of
windows along one axis, the part of each window it alone is responsible for (for cropping
blends), Gaussian weights (for the neuralnets-style blend), and an automatic window size
that covers an axis with as few network-friendly windows as possible.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["round_up", "window_starts", "kept_ranges", "gaussian_weights", "auto_axis_window"]


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start positions of windows of size ``window`` covering ``[0, length)``.

    Windows advance by ``window - overlap``; the last one is moved back to end exactly at
    ``length`` so no window reaches past the data unless the window is larger than the axis
    (then there is one window at 0, and the caller pads).
    """
    if window >= length:
        return [0]
    step = max(1, window - overlap)
    starts = list(range(0, length - window, step))
    starts.append(length - window)
    return starts


def kept_ranges(starts: list[int], window: int, length: int) -> list[tuple[int, int]]:
    """For each window, the ``[a, b)`` it alone answers for when overlaps are cut in half.

    Neighbours split their overlap at its middle, so every position belongs to exactly one
    window and each window keeps the part farthest from its own borders.
    """
    ranges = []
    for index, start in enumerate(starts):
        end = min(start + window, length)
        a = 0 if index == 0 else (start + min(starts[index - 1] + window, length)) // 2
        b = length if index == len(starts) - 1 else (starts[index + 1] + end) // 2
        ranges.append((a, b))
    return ranges


def gaussian_weights(window: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    """Separable Gaussian weights centred on the window, sigma = ``sigma_scale`` * size per axis.

    An axis of size 1 (the z axis of a 2-D network) gets weight 1.
    """
    weights = np.ones((), dtype=np.float32)
    for size in window:
        if size == 1:
            axis = np.ones(1, dtype=np.float64)
        else:
            position = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
            sigma = sigma_scale * size
            axis = np.exp(-0.5 * (position / sigma) ** 2)
        weights = np.multiply.outer(weights, axis.astype(np.float32))
    return weights.astype(np.float32)


def auto_axis_window(length: int, *, largest: int, multiple: int, overlap: int) -> tuple[int, int]:
    """Choose ``(window, overlap)`` for one axis: one window if the axis fits, else a few.

    With several windows the axis is split evenly so that no window is much larger than
    needed, each window a multiple of ``multiple`` and at most ``largest``.
    """
    if length <= largest:
        return round_up(length, multiple), 0
    overlap = min(overlap, largest // 2)
    count = math.ceil((length - overlap) / (largest - overlap))
    window = round_up(math.ceil((length + (count - 1) * overlap) / count), multiple)
    return min(window, round_up(largest, multiple)), overlap
