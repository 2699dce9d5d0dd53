"""The baseline a deep fine-tune must beat: an ilastik-style random forest on the same strokes.

Pixel features are ilastik's default filter set on a slice scaled to [0, 1]: Gaussian
smoothing at sigma 0.3, 0.7, 1.0, 1.6, 3.5, 5 and 10, and at every sigma from 0.7 on the
Laplacian of Gaussian, the Gaussian gradient magnitude, the difference of Gaussians, and the
eigenvalues of the structure tensor and of the Hessian of Gaussian (49 features a pixel).
A scikit-learn random forest of 100 trees is fitted on the painted pixels and predicts
every pixel of the slices to score.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage
from skimage.feature import (
    hessian_matrix,
    hessian_matrix_eigvals,
    structure_tensor,
    structure_tensor_eigenvalues,
)

SIGMAS = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
TREES = 100
UNPAINTED = 255


def features(image: np.ndarray) -> np.ndarray:
    """``(pixels, 49)`` float32 features of one 2-D slice."""
    plane = image.astype(np.float32)
    low, high = float(plane.min()), float(plane.max())
    plane = (plane - low) / max(high - low, 1e-6)
    columns = []
    for sigma in SIGMAS:
        smooth = ndimage.gaussian_filter(plane, sigma)
        columns.append(smooth)
        if sigma < 0.7:
            continue
        columns.append(ndimage.gaussian_laplace(plane, sigma))
        columns.append(ndimage.gaussian_gradient_magnitude(plane, sigma))
        columns.append(smooth - ndimage.gaussian_filter(plane, sigma * 0.66))
        tensor = structure_tensor(plane, sigma=sigma * 0.5, order="rc")
        columns.extend(structure_tensor_eigenvalues(tensor))
        hessian = hessian_matrix(plane, sigma=sigma, order="rc", use_gaussian_derivatives=False)
        columns.extend(hessian_matrix_eigvals(hessian))
    return np.stack([c.ravel() for c in columns], axis=1).astype(np.float32)


def fit_forest(images: list[np.ndarray], painted: list[np.ndarray], *, seed: int = 0):
    """A forest fitted on the painted pixels of ``images``; returns it and the seconds taken
    (features of the painted slices included, as ilastik's live update spends them)."""
    from sklearn.ensemble import RandomForestClassifier

    started = time.perf_counter()
    samples, targets = [], []
    for image, labels in zip(images, painted):
        where = labels.ravel() != UNPAINTED
        samples.append(features(image)[where])
        targets.append(labels.ravel()[where])
    forest = RandomForestClassifier(n_estimators=TREES, n_jobs=-1, random_state=seed)
    forest.fit(np.concatenate(samples), np.concatenate(targets))
    return forest, time.perf_counter() - started


def predict(forest, image: np.ndarray) -> np.ndarray:
    """Class ids of every pixel of one slice."""
    return forest.predict(features(image)).reshape(image.shape).astype(np.uint8)
