"""Strokes spread to the pixels nobody painted, by a pixel classifier fitted on them.

A run on strokes (from scratch, or from a base model that knows other classes) has few
labelled pixels, all in easy places. Before training, a pixel classifier on hand-made features
(:mod:`biosegment.engine.stroke_classifier`) is fitted on the strokes in a few seconds and
predicts every training slice; where it is sure (:data:`CONFIDENCE`), its class is stored
under the strokes in each stack's :attr:`~biosegment.engine.samples.LabelledStack.taught`,
coded ``TEACHER_OFFSET + class`` like the base model's classes of a fine-tune
(:mod:`biosegment.engine.teacher`). The loss weighs those pixels below the strokes
(``spread`` in :class:`~biosegment.engine.train_settings.TrainingSettings`), so the network
learns from labels covering most of each slice instead of from 1 % of it, and the strokes
still decide where the classifier was wrong. Near a stroke the classifier contradicts, it
says nothing.

Memory: it runs before the first training step and holds one tile's features
(:func:`~biosegment.engine.pixel_features.tile_bytes`, about 90 MB, less than the working
memory a step's estimate counts), the few MB of samples the classifier is fitted on, and a few
bytes a pixel of one slice; the spread labels are a byte a pixel of the training slices, like
a fine-tune's base classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from biosegment.engine.losses import TEACHER_OFFSET
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.samples import LabelledStack
from biosegment.engine.stroke_classifier import fit_stroke_classifier
from biosegment.volumes.base import normalise

__all__ = ["spread_strokes", "spread_plane", "CONFIDENCE", "CORRECTION_RADIUS"]

#: The classifier's class is kept where its probability is at least this.
CONFIDENCE = 0.9
#: Pixels this close to a painted pixel the classifier gets wrong keep no spread class.
CORRECTION_RADIUS = 8


def _planes(stacks: Sequence[LabelledStack]) -> list[tuple[LabelledStack, int]]:
    return [(stack, index) for stack in stacks for index in range(stack.labels.shape[0])]


def spread_plane(painted: np.ndarray, chosen: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """One plane's labels to train on: the strokes, and the classifier's class (coded
    ``TEACHER_OFFSET + class``) on unpainted pixels where it is sure and no stroke it
    contradicts lies within :data:`CORRECTION_RADIUS` pixels; 255 elsewhere."""
    wrong = (painted != IGNORE_LABEL) & (painted != chosen)
    if wrong.any():
        sure = sure & ~ndimage.binary_dilation(wrong, iterations=CORRECTION_RADIUS)
    spread = sure & (painted == IGNORE_LABEL)
    taught = painted.copy()
    taught[spread] = chosen[spread] + np.uint8(TEACHER_OFFSET)
    return taught


def spread_strokes(stacks: Sequence[LabelledStack], *, num_classes: int, seed: int = 0) -> bool:
    """Fill each stack's ``taught`` with its strokes and the classifier's sure classes.

    :param stacks: the training stacks (changed in place); dense stacks are left alone.
    :param num_classes: the run's classes.
    :param seed: draws the classifier's samples and initial weights.
    :returns: whether anything was spread (False: fewer than two classes painted).
    """
    sparse = [stack for stack in stacks if not stack.is_dense]
    planes = _planes(sparse)
    painted = [stack.labels[index] for stack, index in planes]
    if not planes:
        return False
    classifier = fit_stroke_classifier(
        [normalise(stack.image[index]) for stack, index in planes],
        painted,
        num_classes=num_classes,
        seed=seed,
    )
    if classifier is None:
        return False
    for stack in sparse:
        taught = np.empty_like(stack.labels)
        for index in range(stack.labels.shape[0]):
            chosen, sure = classifier.sure_classes(normalise(stack.image[index]), CONFIDENCE)
            taught[index] = spread_plane(stack.labels[index], chosen, sure)
        stack.taught = taught
    return True
