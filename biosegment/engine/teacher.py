"""What the base model said about the pixels nobody painted, kept beside the strokes.

A fine-tune from a base model whose classes are the annotation's own learns from strokes and,
where nobody painted, from the class the base model predicted before training started (the
``keep_base`` term of :class:`~biosegment.engine.losses.SegmentationLoss`). The base model
predicts each training slice once, at the start; its classes (where they hold most of the
probability) are stored with each stack under its painted labels, coded ``TEACHER_OFFSET +
class`` (:attr:`LabelledStack.taught`, what crops are then cut from), so the term costs no
forward pass and no extra crop per step.

Around a stroke that contradicts the base model (a person's correction) the base model's
opinion is not kept: that is exactly where the person said it is wrong.

A training slice can be thousands of pixels a side, and the fine-tune shares its process with
the web server on one machine, so a plane is predicted a tile at a time and each tile is
reduced at once to what is kept of it: one byte a pixel holding the base model's class and
whether it was confident. Neither the plane's logits nor its probabilities per class are
ever held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from biosegment.engine.losses import MAX_TEACHER_CLASSES, TEACHER_OFFSET
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.samples import LabelledStack
from biosegment.engine.unet import UNet
from biosegment.engine.validation import logit_tiles, predict_logits

__all__ = [
    "Teacher",
    "teach_stacks",
    "classes_match",
    "prior_weights",
    "CONFIDENCE",
    "CORRECTION_RADIUS",
]

#: The base model's class is kept where its probability is at least this: a class of most of
#: the probability. Measured on ISBI (400 steps from the shipped model): keeping it on every
#: such pixel harmed the base model less than keeping only its surest pixels (p >= 0.8): Dice
#: 0.802 against 0.794 (the base model: 0.808); the edges a fine-tune moves are the pixels it is
#: least sure of.
CONFIDENCE = 0.5
#: Pixels this close to a stroke that contradicts the base model keep no base class.
CORRECTION_RADIUS = 24
#: Rows worked at a time when a 3-D model's probabilities of a plane are made: a band of a
#: 4096-wide slice is a few MB, where the whole plane in floats would be hundreds.
_BAND_ROWS = 256
#: The base model's opinion of a pixel in one byte: its class in the low bits (there are at
#: most ``MAX_TEACHER_CLASSES``, 127), and this bit when the class holds at least
#: ``CONFIDENCE`` of the probability.
_CONFIDENT_BIT = np.uint8(128)


def classes_match(base_classes: Sequence[dict], classes: Sequence[dict]) -> bool:
    """True when a run's classes are the base model's (same ids, same names, any case).

    Only then does the base model's prediction mean anything for the annotation's classes:
    a membrane model fine-tuned into a mitochondria model must not be held to its membranes.
    """
    if len(base_classes) != len(classes) or len(classes) > MAX_TEACHER_CLASSES:
        return False
    names = {int(c["id"]): str(c.get("name", "")).strip().lower() for c in classes}
    return all(
        names.get(int(c["id"])) == str(c.get("name", "")).strip().lower() for c in base_classes
    )


class Teacher:
    """The base model as it was before training, and its predictions of the training slices.

    :meth:`teach` fills the ``teacher`` of each stack it is given; planes it has predicted
    before are not predicted again (strokes that join a running job).
    """

    def __init__(self, model: UNet) -> None:
        self.model = model
        self.known: dict = {}

    def teach(
        self,
        stacks: Sequence[LabelledStack],
        *,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
    ) -> None:
        self.known = teach_stacks(
            stacks, self.model, device=device, autocast_dtype=autocast_dtype, known=self.known
        )


def _teacher_plane(opinion: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """Coded base classes for one plane: confident pixels, away from contradicting strokes.

    :param opinion: the base model's opinion of each pixel (see :func:`_opinion_of`).
    :param painted: the plane's painted labels (``IGNORE_LABEL`` where nobody painted).
    """
    chosen = opinion & ~_CONFIDENT_BIT
    contradicted = painted != IGNORE_LABEL
    contradicted &= painted != chosen
    dropped = opinion < _CONFIDENT_BIT
    if contradicted.any():
        dropped |= _near(contradicted, CORRECTION_RADIUS)
    del contradicted
    chosen += np.uint8(TEACHER_OFFSET)
    chosen[dropped] = IGNORE_LABEL
    return chosen


def _near(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` steps (4-connected), worked out within the box of its
    pixels grown by ``radius``: nothing farther can change, and a few corrections on a large
    slice then cost a few small arrays, not several of the slice's size."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    box = (
        slice(max(rows[0] - radius, 0), min(rows[-1] + 1 + radius, mask.shape[0])),
        slice(max(columns[0] - radius, 0), min(columns[-1] + 1 + radius, mask.shape[1])),
    )
    near = np.zeros(mask.shape, bool)
    near[box] = ndimage.binary_dilation(mask[box], iterations=radius)
    return near


def _opinion_of(probabilities: np.ndarray) -> np.ndarray:
    """One byte a pixel from class probabilities in bytes (``(classes, ...)``, see
    :func:`_as_uint8`): the most probable class, with :data:`_CONFIDENT_BIT` set where it
    holds at least :data:`CONFIDENCE`."""
    opinion = probabilities.argmax(axis=0).astype(np.uint8)
    opinion[probabilities.max(axis=0) / 255.0 >= CONFIDENCE] |= _CONFIDENT_BIT
    return opinion


def _plane_opinion(
    model: UNet,
    plane: np.ndarray,
    *,
    scale: Callable[[np.ndarray], np.ndarray],
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> np.ndarray:
    """A 2-D model's opinion of every pixel of one raw plane, predicted a tile at a time
    (``scale`` turns raw pixels into the network's input)."""
    opinion = np.empty(plane.shape, np.uint8)
    for where, logits in logit_tiles(
        model, plane, device=device, autocast_dtype=autocast_dtype, scale=scale
    ):
        opinion[where] = _opinion_of(_as_uint8(logits))
    return opinion


def teach_stacks(
    stacks: Sequence[LabelledStack],
    model: UNet,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    known: dict | None = None,
) -> dict:
    """Store the painted labels with the base model's classes under them in each stack's
    ``taught`` (in place).

    :param stacks: training stacks (their painted labels decide where corrections are).
    :param model: the base model, before any training step.
    :param known: ``{(source, z): opinion}`` of planes predicted before (one byte a pixel,
        see :func:`_opinion_of`); reused, so strokes that join a running job cost a
        prediction only for slices new to it.
    :returns: the opinion of every plane, keyed as ``known``.
    """
    cache = dict(known or {})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for stack in stacks:
                taught = np.empty(stack.labels.shape, np.uint8)
                for index in range(stack.labels.shape[0]):
                    key = (stack.source, stack.z_start + index)
                    if key not in cache:
                        if model.dims == 3:
                            # A 3-D model sees the whole stack; keep each plane's share.
                            logits = predict_logits(
                                model,
                                stack.scaled(stack.image),
                                device=device,
                                autocast_dtype=autocast_dtype,
                            )
                            for i in range(stack.labels.shape[0]):
                                cache[(stack.source, stack.z_start + i)] = _opinion_of(
                                    _as_uint8(logits[:, i])
                                )
                            del logits
                        else:
                            cache[key] = _plane_opinion(
                                model,
                                stack.image[index],
                                scale=stack.scaled,
                                device=device,
                                autocast_dtype=autocast_dtype,
                            )
                    labels = stack.labels[index]
                    plane = _teacher_plane(cache[key], labels)
                    painted = labels != IGNORE_LABEL
                    plane[painted] = labels[painted]
                    taught[index] = plane
                stack.taught = taught
    finally:
        model.train(was_training)
    return cache


def _as_uint8(logits: torch.Tensor) -> np.ndarray:
    """Class probabilities of ``(classes, rows, ...)`` logits in a byte each (a slice of 1024²
    and 2 classes: 2 MB), worked out a band of rows at a time."""
    kept = np.empty(tuple(logits.shape), np.uint8)
    for r0 in range(0, logits.shape[1], _BAND_ROWS):
        band = torch.softmax(logits[:, r0 : r0 + _BAND_ROWS].float(), dim=0)
        kept[:, r0 : r0 + _BAND_ROWS] = band.mul_(255.0).add_(0.5).to(torch.uint8).numpy()
    return kept


def prior_weights(stacks: Sequence[LabelledStack], num_classes: int) -> list[float] | None:
    """Cross-entropy weights that give the strokes the class shares of the slices themselves.

    A person paints about as much of a thin class (membranes) as of the rest, where a slice
    is a quarter membrane: trained on the strokes as they are, a fine-tune learns that
    membranes are twice as common as they are and draws them thicker. The base model's classes
    on the training slices say how common each class is; each class's strokes are weighted by
    its share there over its share of the strokes (capped at 5 times either way, mean 1).
    None when no stack holds the base model's classes.
    """
    painted = np.zeros(num_classes)
    seen = np.zeros(num_classes)
    for stack in stacks:
        if stack.taught is None:
            continue
        ids = stack.labels[stack.labels < num_classes]
        painted += np.bincount(ids.ravel(), minlength=num_classes)[:num_classes]
        # counted class by class: a slice-wide array of ids as integers costs 8 bytes a pixel
        seen += [np.count_nonzero(stack.taught == TEACHER_OFFSET + c) for c in range(num_classes)]
    present = (painted > 0) & (seen > 0)
    if not present.any():
        return None
    ratio = np.where(present, (seen / seen.sum()) / np.maximum(painted / painted.sum(), 1e-9), 1.0)
    ratio = np.clip(ratio, 0.2, 5.0)
    ratio = np.where(present, ratio / ratio[present].mean(), 1.0)
    return [float(r) for r in ratio]
