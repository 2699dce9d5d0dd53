"""The training loss: what painted pixels say, and what may be inferred about the others.

Sparse annotations leave most pixels at 255. Two terms use them differently:

- **cross-entropy (plus optional soft Dice) on painted pixels**: the person's strokes. Unpainted
  pixels neither pull the network towards a class nor count in the average;
- **keeping what the base model knew** (``keep_base``): on pixels nobody painted, cross-entropy
  towards the class the base model predicted there before fine-tuning (its confident
  predictions only). Those pixels arrive coded as ``TEACHER_OFFSET + class`` in the labels (see
  :mod:`biosegment.engine.teacher`). Strokes are few and never a fair sample of a slice (a
  person paints as much membrane as interior where a slice is a quarter membrane); this term
  keeps the rest of the slice where the base model had it, as Learning without Forgetting
  does, at the cost of no extra forward pass. In a run without the base model's classes the
  same coded pixels hold what a pixel classifier fitted on the strokes says instead (see
  :mod:`biosegment.engine.spread`), weighted by the settings' ``spread``.

Each term is averaged over the pixels it applies to, so the strokes keep their weight however
much of the crop the other terms cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from biosegment.engine.metrics import IGNORE_LABEL

__all__ = ["SegmentationLoss", "TEACHER_OFFSET", "MAX_TEACHER_CLASSES"]

#: Labels from ``TEACHER_OFFSET`` up (below 255) are the base model's class on unpainted pixels.
TEACHER_OFFSET = 128
#: The most classes a base model's predictions can be coded for (ids up to 254).
MAX_TEACHER_CLASSES = IGNORE_LABEL - TEACHER_OFFSET


class SegmentationLoss:
    """``CE + dice_weight * (1 - Dice)`` on painted pixels, plus the base model's term.

    :param num_classes: logits channels.
    :param dice_weight: weight of the Dice term; 0 gives plain cross-entropy.
    :param class_weights: optional cross-entropy weight per class (painted pixels).
    :param keep_base: weight of the cross-entropy towards the coded classes of unpainted
        pixels (labels ``TEACHER_OFFSET + class``: the base model's, or the spread strokes');
        0 ignores them.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        dice_weight: float = 0.0,
        class_weights: Sequence[float] | None = None,
        keep_base: float = 0.0,
    ):
        self.num_classes = num_classes
        self.dice_weight = float(dice_weight)
        self.keep_base = float(keep_base)
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(f"{len(class_weights)} class weights for {num_classes} classes")
        self.class_weights = (
            None
            if class_weights is None
            else torch.tensor(list(class_weights), dtype=torch.float32)
        )

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits (N, C, *spatial)`` against ``labels (N, *spatial)`` (int64).

        Returns a zero that still carries a gradient when no term applies, so a batch of
        empty crops can never turn the weights into NaN.
        """
        logits = logits.float()  # the loss is computed in fp32 even under bf16 autocast
        painted = labels < TEACHER_OFFSET
        loss = logits.sum() * 0.0
        if bool(painted.any()):
            weights = None if self.class_weights is None else self.class_weights.to(logits.device)
            strokes = torch.where(painted, labels, torch.full_like(labels, IGNORE_LABEL))
            loss = loss + F.cross_entropy(
                logits, strokes, weight=weights, ignore_index=IGNORE_LABEL
            )
            if self.dice_weight > 0:
                loss = loss + self.dice_weight * self._dice_loss(logits, strokes, painted)
        if self.keep_base > 0:
            taught = (labels >= TEACHER_OFFSET) & (labels != IGNORE_LABEL)
            if bool(taught.any()):
                targets = torch.where(taught, labels - TEACHER_OFFSET, IGNORE_LABEL)
                loss = loss + self.keep_base * F.cross_entropy(
                    logits, targets, ignore_index=IGNORE_LABEL
                )
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
