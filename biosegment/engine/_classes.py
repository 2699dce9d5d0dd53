"""Per-voxel operations across the class axis of logits and scores, done plane by plane.

Arrays here are ``(classes, ...)``. PyTorch's ``softmax(dim=0)`` and ``argmax(dim=0)`` walk
the class axis with a large stride and, on a CPU, cost 5-20x more than the network's last
layers for small class counts; a short Python loop of whole-plane elementwise operations
reads memory in order instead.
"""

from __future__ import annotations

import torch

__all__ = ["softmax_over_classes", "argmax_over_classes", "probabilities_to_uint8"]


def softmax_over_classes(logits: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(logits, dim=0)`` for a ``(classes, ...)`` tensor, as a new tensor."""
    peak = logits[0].clone()
    for plane in logits[1:]:
        torch.maximum(peak, plane, out=peak)
    exponentials = torch.exp(logits - peak)  # subtracting the peak keeps exp finite
    total = exponentials[0].clone()
    for plane in exponentials[1:]:
        total += plane
    return exponentials.div_(total)


def argmax_over_classes(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(dim=0)`` as uint8 for a ``(classes, ...)`` tensor (first max wins)."""
    best = scores[0].clone()
    labels = torch.zeros(best.shape, dtype=torch.uint8, device=scores.device)
    for class_id in range(1, scores.shape[0]):
        better = scores[class_id] > best
        labels.masked_fill_(better, class_id)
        torch.maximum(best, scores[class_id], out=best)
    return labels


def probabilities_to_uint8(probabilities: torch.Tensor) -> torch.Tensor:
    """Probabilities in [0, 1] as uint8 0..255, rounded."""
    return (probabilities * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
