"""The training loss: cross-entropy plus optional soft Dice, both blind to unlabelled pixels.

Sparse annotations leave most pixels at 255; those must neither pull the network towards a class
nor count in the average. Cross-entropy uses ``ignore_index``; the Dice term masks them out
before summing. The Dice term counters class imbalance (thin membranes, small organelles) that
plain cross-entropy tends to under-segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from biosegment.engine.metrics import IGNORE_LABEL

__all__ = ["SegmentationLoss"]


class SegmentationLoss:
    """``cross_entropy + dice_weight * (1 - soft Dice)`` over labelled pixels only.

    :param num_classes: logits channels.
    :param dice_weight: weight of the Dice term; 0 gives plain cross-entropy.
    :param class_weights: optional cross-entropy weight per class.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        dice_weight: float = 0.0,
        class_weights: Sequence[float] | None = None,
    ):
        self.num_classes = num_classes
        self.dice_weight = float(dice_weight)
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(f"{len(class_weights)} class weights for {num_classes} classes")
        self.class_weights = (
            None
            if class_weights is None
            else torch.tensor(list(class_weights), dtype=torch.float32)
        )

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits (N, C, *spatial)`` against ``labels (N, *spatial)`` (int64).

        Returns a zero that still carries a gradient when no pixel is labelled, so a batch
        of empty crops can never turn the weights into NaN.
        """
        logits = logits.float()  # the loss is computed in fp32 even under bf16 autocast
        labelled = labels != IGNORE_LABEL
        if not bool(labelled.any()):
            return logits.sum() * 0.0
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        loss = F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE_LABEL)
        if self.dice_weight > 0:
            loss = loss + self.dice_weight * self._dice_loss(logits, labels, labelled)
        return loss

    def _dice_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor
    ) -> torch.Tensor:
        probabilities = torch.softmax(logits, dim=1)
        mask = labelled.unsqueeze(1).to(probabilities.dtype)
        # Unlabelled pixels get class 0 here, but the mask removes them from every sum.
        targets = torch.where(labelled, labels, torch.zeros_like(labels))
        one_hot = F.one_hot(targets, self.num_classes).movedim(-1, 1).to(probabilities.dtype)
        reduce_axes = [0, *range(2, logits.dim())]
        overlap = (probabilities * one_hot * mask).sum(reduce_axes)
        total = (probabilities * mask).sum(reduce_axes) + (one_hot * mask).sum(reduce_axes)
        # Classes absent from the batch and never predicted would score 0/0: leave them out.
        present = total > 1e-3
        dice = (2.0 * overlap[present] + 1.0) / (total[present] + 1.0)
        return 1.0 - dice.mean()
