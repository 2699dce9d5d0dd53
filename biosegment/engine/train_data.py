"""What a training run learns from: the labelled material and the facts its model card records.

:class:`TrainingData` is one of the three things :func:`~biosegment.engine.training.train_model`
is given, beside :class:`~biosegment.engine.train_settings.TrainingSettings` (how to train) and
the run's observers: the ``(image, labels)`` pairs, optional held-out pairs, the classes and
how raw pixels are scaled, and the name, parent and provenance written into the card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from biosegment.engine.samples import TrainingPair
from biosegment.errors import InputError

__all__ = ["TrainingData", "as_pairs"]


@dataclass(frozen=True, slots=True)
class TrainingData:
    """The material of one training run.

    - ``training``: ``(image, labels)`` pairs or :class:`TrainingPair` objects. Images are
      ``(z, y, x)`` / ``(y, x)`` arrays or volume readers; labels are class ids with 255 for
      unlabelled pixels: a same-shaped array (dense ground truth, or unpainted slices all
      255) or a mapping ``{z: (y, x) slice}`` of annotated slices.
    - ``validation``: explicit held-out pairs; when None, the settings'
      ``validation_fraction`` of the labelled slices (or of each slice's labelled region,
      with few slices) is held out.
    - ``classes``: ``[{"id", "name", "color"}]`` for ids ``0..N-1``; default: the base model's
      classes or generic names.
    - ``boundary_class``: the membrane class id; adds Rand error and VI to validation scores.
    - ``normalisation``: how raw pixels are scaled (a model card entry, see
      :mod:`biosegment.engine.intensity`); default: the base model's, else the dtype range.
    - ``name``: the model's name in its card (default: the model folder's name).
    - ``parent``: the base model to record in the card (default: its path).
    - ``provenance``: extra facts for the card's ``training`` section (data source, job).
    """

    training: Sequence[Any]
    validation: Sequence[Any] | None = None
    classes: Sequence[Mapping] | None = None
    boundary_class: int | None = None
    normalisation: Mapping | None = None
    name: str | None = None
    parent: str | None = None
    provenance: Mapping | None = None


def as_pairs(items: Sequence[Any], *, label: str) -> list[TrainingPair]:
    """``items`` as :class:`TrainingPair` objects; an input error names a bad item."""
    pairs = []
    for index, item in enumerate(items):
        if isinstance(item, TrainingPair):
            pairs.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            pairs.append(TrainingPair(item[0], item[1], name=f"{label} pair {index}"))
        else:
            raise InputError("expected (image, labels) pairs", where=f"{label}[{index}]")
    if not pairs:
        raise InputError("no training data given", where=label)
    return pairs
