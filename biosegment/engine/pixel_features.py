"""Hand-made pixel features of a slice, the filter set ilastik's pixel classifier uses.

At each scale ``sigma`` (:data:`SIGMAS`): Gaussian smoothing, and from 0.7 on the Laplacian of
Gaussian, the gradient magnitude, the difference of Gaussians, and the two eigenvalues of the
structure tensor and of the Hessian: 48 features a pixel. They are computed with scipy's
Gaussian filters (coarse scales on a shrunk image; about a second for a 1024² slice on one
core, which leaves the other to the training that runs beside it), a tile at a
time with a margin wide enough for the largest kernel, so a slice of any size costs a few tens
of MB (:data:`TILE`), and each tile's features match those of the whole slice.

These features are what lets a pixel classifier learn a class from the strokes of a few
slices (see :mod:`biosegment.engine.stroke_classifier`): they describe a pixel's
neighbourhood at several scales without being learnt.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

__all__ = ["SIGMAS", "TILE", "feature_count", "slice_features", "feature_tiles", "tile_bytes"]

#: Scales of the filters (pixels), ilastik's default set without its finest smoothing.
SIGMAS = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
#: Edge of the tiles a slice's features are computed in (pixels, before the margin).
TILE = 512
# A Gaussian kernel reaches this many sigmas each way.
_TRUNCATE = 3.0
# The difference of Gaussians subtracts the smoothing at this fraction of sigma.
_DOG_RATIO = 0.66
# The structure tensor's products are smoothed at this multiple of sigma.
_TENSOR_RATIO = 0.5
# Coarse scales are computed on a shrunk image where sigma stays at least this there.
_FINEST_SHRUNK = 1.6
_PER_SIGMA = 8  # smooth, LoG, gradient, DoG, 2 structure-tensor and 2 Hessian eigenvalues


def feature_count() -> int:
    """Features a pixel gets."""
    return _PER_SIGMA * len(SIGMAS)


def _margin() -> int:
    """Pixels of context around a tile: beyond the reach of the widest filter and its
    structure tensor's smoothing, and a multiple of the coarsest shrinking, so a tile's blocks
    are the slice's blocks."""
    reach = _TRUNCATE * max(SIGMAS) * (1 + _TENSOR_RATIO) + 2 * _largest_factor()
    return int(math.ceil(reach / _largest_factor())) * _largest_factor()


def _factor(sigma: float) -> int:
    """How much the image is shrunk for the filters of ``sigma``: a power of two."""
    factor = 1
    while sigma / (factor * 2) >= _FINEST_SHRUNK:
        factor *= 2
    return factor


def _largest_factor() -> int:
    return max(_factor(sigma) for sigma in SIGMAS)


def tile_bytes() -> int:
    """Memory the features of one tile take (float32), the most a slice costs at a time."""
    edge = TILE + 2 * _margin()
    return edge * edge * (feature_count() + 12) * 4


def _filter(image: np.ndarray, sigma: float, order: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A Gaussian (or one of its derivatives) at ``sigma``, edge pixels repeated."""
    return ndimage.gaussian_filter(image, sigma, order=order, mode="nearest", truncate=_TRUNCATE)


def _eigenvalues(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (larger first) of the symmetric 2x2 matrices ``[[a, b], [b, c]]``."""
    mean = 0.5 * (a + c)
    spread = np.sqrt(0.25 * (a - c) ** 2 + b**2)
    return mean + spread, mean - spread


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` averaged over blocks of ``factor`` pixels (edges repeated to fill the last)."""
    rows, columns = (-(-n // factor) * factor for n in image.shape)
    padded = np.pad(image, ((0, rows - image.shape[0]), (0, columns - image.shape[1])), "edge")
    return padded.reshape(rows // factor, factor, columns // factor, factor).mean(axis=(1, 3))


def _enlarge(features: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """Shrunk ``(features, y, x)`` back to ``shape`` by linear interpolation between blocks."""
    small = torch.from_numpy(np.ascontiguousarray(features))[None]
    zoomed = F.interpolate(small, scale_factor=factor, mode="bilinear", align_corners=False)
    return zoomed[0, :, : shape[0], : shape[1]].numpy()


def _scale_features(image: np.ndarray, sigma: float) -> np.ndarray:
    """The 8 features of one scale, ``(8, y, x)``, of a ``(y, x)`` float32 image.

    Coarse scales are computed on the image shrunk by a power of two (sigma stays at least
    :data:`_FINEST_SHRUNK` pixels there) and enlarged again: the features of sigma 10 then cost
    what those of sigma 2.5 do, and they hold no detail finer than the shrinking removes.
    """
    factor = _factor(sigma)
    small = _shrink(image, factor) if factor > 1 else image
    scale = sigma / factor
    smooth = _filter(small, scale)
    gy, gx = _filter(small, scale, (1, 0)), _filter(small, scale, (0, 1))
    yy, xx, xy = (_filter(small, scale, order) for order in ((2, 0), (0, 2), (1, 1)))
    outer = max(scale * _TENSOR_RATIO, 0.5)
    tensor = [_filter(product, outer) for product in (gy * gy, gy * gx, gx * gx)]
    features = np.stack(
        [
            smooth,
            yy + xx,
            np.hypot(gy, gx),
            smooth - _filter(small, scale * _DOG_RATIO),
            *_eigenvalues(*tensor),
            *_eigenvalues(yy, xy, xx),
        ]
    )
    return _enlarge(features, factor, image.shape) if factor > 1 else features


def _features(plane: np.ndarray) -> np.ndarray:
    """``(features, y, x)`` float32 of a ``(y, x)`` plane scaled to [0, 1]."""
    image = np.asarray(plane, np.float32)
    return np.concatenate([_scale_features(image, sigma) for sigma in SIGMAS])


def feature_tiles(plane: np.ndarray) -> Iterator[tuple[tuple[slice, slice], torch.Tensor]]:
    """The features of a slice a tile at a time.

    :param plane: ``(y, x)`` pixels already scaled to [0, 1] (any float or integer type).
    :returns: ``(where, features)`` pairs: the tile's place in the slice and its
        ``(features, rows, columns)`` float32 tensor; the tiles cover the slice once.
    """
    margin = _margin()
    rows, columns = plane.shape
    for y0 in range(0, rows, TILE):
        for x0 in range(0, columns, TILE):
            y1, x1 = min(y0 + TILE, rows), min(x0 + TILE, columns)
            top, left = max(y0 - margin, 0), max(x0 - margin, 0)
            bottom, right = min(y1 + margin, rows), min(x1 + margin, columns)
            features = torch.from_numpy(_features(plane[top:bottom, left:right]))
            inner = features[:, y0 - top : y1 - top, x0 - left : x1 - left]
            yield (slice(y0, y1), slice(x0, x1)), inner.contiguous()


def slice_features(plane: np.ndarray) -> torch.Tensor:
    """``(features, y, x)`` of a whole slice (a small one: the tiles put together)."""
    out = torch.empty((feature_count(), *plane.shape), dtype=torch.float32)
    for (rows, columns), features in feature_tiles(plane):
        out[:, rows, columns] = features
    return out
