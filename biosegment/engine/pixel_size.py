"""Match a dataset's pixel size to the one a model was trained for.

A model card may say which in-plane pixel sizes its network expects (``pixel_size`` ->
``in_plane_nm: [low, high]``). When a dataset's voxel size is known and its in-plane pixels
are larger or smaller than that range, inference zooms each slice so the network sees
membranes as thick as in training, and maps the class probabilities back to the dataset's
own grid (:func:`zoom_for` gives the factor; :func:`zoom_plane` and :func:`unzoom_plane` do
the resampling). z is never resampled: 2-D networks work slice by slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["zoom_for", "zoom_plane", "unzoom_plane", "zoomed_shape"]

# Zooms closer to 1 than this are not worth the resampling.
_NEGLIGIBLE = 0.02


def zoom_for(pixel_size: Mapping | None, voxel_size: Sequence[float] | None) -> float | None:
    """The in-plane zoom that brings a dataset's pixels into the model's range, or None.

    :param pixel_size: the model card's ``pixel_size`` (``in_plane_nm: [low, high]``).
    :param voxel_size: the dataset's ``(z, y, x)`` voxel size in nm, None when unknown.
    :returns: > 1 to magnify (the dataset's pixels are coarser than the model's), < 1 to
        shrink, None when no zoom is needed or nothing is known.
    """
    expected = (pixel_size or {}).get("in_plane_nm")
    if not expected or voxel_size is None or len(voxel_size) < 2:
        return None
    low, high = (float(v) for v in expected)
    in_plane = [float(v) for v in list(voxel_size)[-2:]]
    if any(not np.isfinite(v) or v <= 0 for v in in_plane) or not 0 < low <= high:
        return None
    size = float(np.mean(in_plane))
    target = min(max(size, low), high)
    factor = size / target
    return None if abs(factor - 1.0) < _NEGLIGIBLE else factor


def zoomed_shape(shape: Sequence[int], factor: float) -> tuple[int, ...]:
    """``shape`` ``(..., y, x)`` with the last two axes zoomed by ``factor`` (at least 1)."""
    return (*shape[:-2], *(max(1, int(round(n * factor))) for n in shape[-2:]))


def zoom_plane(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the last two axes of float32 ``pixels`` by ``factor`` (linear interpolation)."""
    target = zoomed_shape(pixels.shape, factor)
    return _resample(pixels, target)


def unzoom_plane(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resample the last two axes of ``values`` back to ``shape[-2:]`` (linear)."""
    return _resample(values, (*values.shape[:-2], *shape[-2:]))


def _resample(values: np.ndarray, target: Sequence[int]) -> np.ndarray:
    factors = [t / n for t, n in zip(target, values.shape)]
    out = np.empty(tuple(target), dtype=np.float32)
    ndimage.zoom(
        values.astype(np.float32, copy=False),
        factors,
        output=out,
        order=1,
        mode="nearest",
        grid_mode=True,
    )
    return out
