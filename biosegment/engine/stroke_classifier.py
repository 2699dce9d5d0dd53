"""A pixel classifier fitted in seconds on the strokes, as ilastik's live update does.

A small multilayer perceptron on hand-made pixel features
(:mod:`biosegment.engine.pixel_features`) is fitted on the painted pixels of the training
slices: the features describe a pixel's neighbourhood at several scales without being learnt,
so a few thousand painted pixels are enough, where a U-Net trained from scratch on the same
strokes learns their textures and little else. Each class's painted pixels weigh the same in
its loss, however much more of one a person painted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.pixel_features import feature_count, feature_tiles

__all__ = ["StrokeClassifier", "fit_stroke_classifier", "SAMPLES_PER_CLASS"]

#: Painted pixels of each class the classifier is fitted on at most (drawn at random).
SAMPLES_PER_CLASS = 20_000
# The perceptron's hidden width, optimisation steps and rate: fitted on full batches, this
# takes about a second on 2 cores.
_HIDDEN = 32
_STEPS = 300
_RATE = 0.01
_WEIGHT_DECAY = 1e-4


class StrokeClassifier:
    """A fitted pixel classifier: class probabilities of every pixel of a slice."""

    def __init__(self, network: torch.nn.Module, mean: torch.Tensor, scale: torch.Tensor):
        self.network = network
        self.mean = mean
        self.scale = scale

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(pixels, classes)`` of ``(pixels, features)``."""
        return self.network((features - self.mean) / self.scale)

    def sure_classes(self, plane: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        """The most likely class of every pixel of a slice scaled to [0, 1], and where its
        probability is at least ``confidence``: ``(uint8 ids, bool)``, worked out a tile at a
        time (a few bytes a pixel of the slice)."""
        chosen = np.empty(plane.shape, np.uint8)
        sure = np.empty(plane.shape, bool)
        with torch.no_grad():
            for (rows, columns), features in feature_tiles(plane):
                flat = features.reshape(features.shape[0], -1).T
                best = torch.softmax(self._logits(flat), dim=1).max(dim=1)
                shape = features.shape[1:]
                chosen[rows, columns] = best.indices.reshape(shape).numpy()
                sure[rows, columns] = (best.values >= confidence).reshape(shape).numpy()
        return chosen, sure

    def probabilities(self, plane: np.ndarray) -> np.ndarray:
        """``(classes, y, x)`` float32 probabilities of a slice scaled to [0, 1]."""
        out: np.ndarray | None = None
        with torch.no_grad():
            for (rows, columns), features in feature_tiles(plane):
                flat = features.reshape(features.shape[0], -1).T
                chance = torch.softmax(self._logits(flat), dim=1).T
                if out is None:
                    out = np.empty((chance.shape[0], *plane.shape), np.float32)
                out[:, rows, columns] = chance.reshape(-1, *features.shape[1:]).numpy()
        assert out is not None
        return out


def _painted_samples(
    planes: Sequence[np.ndarray], labels: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and class ids of at most :data:`SAMPLES_PER_CLASS` painted pixels a class."""
    # Chosen first (by flat position in each slice), so only the chosen pixels' features are kept.
    chosen_by_class: dict[int, list[tuple[int, np.ndarray]]] = {}
    for number, painted in enumerate(labels):
        flat = painted.ravel()
        for class_id in np.unique(flat[flat != IGNORE_LABEL]):
            where = np.flatnonzero(flat == class_id)
            chosen_by_class.setdefault(int(class_id), []).append((number, where))
    keep = [np.zeros(p.size, bool) for p in labels]
    for pieces in chosen_by_class.values():
        total = sum(where.size for _, where in pieces)
        share = min(1.0, SAMPLES_PER_CLASS / total)
        for number, where in pieces:
            if share < 1.0:
                where = where[rng.random(where.size) < share]
            keep[number][where] = True
    samples, targets = [], []
    for plane, painted, flat_kept in zip(planes, labels, keep):
        kept = flat_kept.reshape(painted.shape)
        if not kept.any():
            continue
        for (rows, columns), features in feature_tiles(plane):
            inside = torch.from_numpy(kept[rows, columns])
            if bool(inside.any()):
                samples.append(features[:, inside].T)
                targets.append(torch.from_numpy(painted[rows, columns][kept[rows, columns]]))
    return torch.cat(samples), torch.cat(targets).long()


def fit_stroke_classifier(
    planes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    num_classes: int,
    seed: int = 0,
) -> StrokeClassifier | None:
    """Fit the classifier on the painted pixels of ``planes``.

    :param planes: ``(y, x)`` slices scaled to [0, 1].
    :param labels: their painted class ids, 255 where nobody painted.
    :param num_classes: the classes of the run (a class nobody painted is never predicted).
    :param seed: draws the samples and the initial weights.
    :returns: the classifier; None when fewer than two classes are painted.
    """
    rng = np.random.default_rng(seed)
    samples, targets = _painted_samples(planes, labels, rng)
    present = torch.unique(targets)
    if present.numel() < 2:
        return None
    mean = samples.mean(dim=0)
    scale = samples.std(dim=0).clamp_min(1e-6)
    generator = torch.Generator().manual_seed(seed)
    network = torch.nn.Sequential(
        torch.nn.Linear(feature_count(), _HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(_HIDDEN, num_classes),
    )
    with torch.no_grad():
        for layer in network:
            if isinstance(layer, torch.nn.Linear):
                bound = 1.0 / layer.in_features**0.5
                layer.weight.copy_(
                    torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound
                )
                layer.bias.zero_()
    counts = torch.bincount(targets, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / counts.clamp_min(1), torch.zeros(()))
    weights = weights / weights[counts > 0].mean()
    optimizer = torch.optim.Adam(network.parameters(), lr=_RATE, weight_decay=_WEIGHT_DECAY)
    inputs = (samples - mean) / scale
    with torch.enable_grad():
        for _ in range(_STEPS):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(network(inputs), targets, weight=weights)
            loss.backward()
            optimizer.step()
    network.eval()
    with torch.no_grad():  # a class nobody painted is never the classifier's answer
        output = network[-1]
        assert isinstance(output, torch.nn.Linear)
        output.bias[counts == 0] = -30.0
    return StrokeClassifier(network, mean, scale)
