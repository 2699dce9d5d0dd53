"""Train a U-Net from ground truth or sparse annotations, from scratch or from a base model.

:func:`train_model` is the one entry point. It takes what to learn from
(:class:`~biosegment.engine.train_data.TrainingData`), where to write the model, how to train
(:class:`~biosegment.engine.train_settings.TrainingSettings`), an optional base model and the
run's observers; :func:`~biosegment.engine.train_setup.build_parts` turns these into the
network, sample pool, loss and optimizer, and a :class:`~biosegment.engine.trainer.Trainer`
runs them. The model folder gets the best model (``model.pytorch`` in the ``neuralnets`` key
layout plus ``model.json``), the last one in ``last/``, TensorBoard curves in ``logs/`` and a
resumable training state. A cancel request is honoured between batches, after the state is
saved; calling again with the same folder resumes where the run stopped, as if it had never
been interrupted.
"""

from __future__ import annotations

from pathlib import Path

from biosegment.engine.augment import AugmentConfig
from biosegment.engine.progress import TrainingObservers
from biosegment.engine.train_data import TrainingData
from biosegment.engine.train_settings import SELECTION_METRICS, TrainingSettings
from biosegment.engine.train_setup import BaseModel, automatic_class_weights, build_parts
from biosegment.engine.train_state import load_training_state
from biosegment.engine.trainer import Trainer, TrainingResult
from biosegment.folder_names import LAST_EPOCH_DIR, TRAINING_LOGS_DIR

__all__ = [
    "train_model",
    "TrainingData",
    "TrainingObservers",
    "TrainingResult",
    "TrainingSettings",
    "LAST_FOLDER",
    "LOG_FOLDER",
    "SELECTION_METRICS",
    "automatic_class_weights",
]

#: Sub-folders of a model folder: the last epoch's model, and the TensorBoard event files.
LAST_FOLDER = LAST_EPOCH_DIR
LOG_FOLDER = TRAINING_LOGS_DIR


def train_model(
    data: TrainingData,
    output: Path | str,
    settings: TrainingSettings | None = None,
    *,
    base_model: BaseModel | None = None,
    augment: AugmentConfig | None = None,
    observers: TrainingObservers | None = None,
    resume: bool = True,
) -> TrainingResult:
    """Train (or fine-tune) a U-Net and write it to a model folder.

    :param data: the labelled material, held-out pairs, classes and card facts
        (:class:`TrainingData`).
    :param output: the model folder to write (``models/<model>/``); created when missing.
    :param settings: every option of the run (:class:`TrainingSettings`: budget, network,
        crops, optimiser, validation, precision, device, threads, seed); default: the
        defaults, a 3-minute budget. Runs without a time budget are repeatable: the same seed
        gives the same weights on the same CPU.
    :param base_model: a model file or folder, or a loaded ``(UNet, ModelCard)``: its weights
        are the starting point (fine-tuning), and the settings' network is not used. Extra
        classes get a new output row. Its held-out scores are recorded as epoch 0.
    :param augment: augmentations; default flips, rotations and intensity changes.
    :param observers: the run's callbacks (:class:`TrainingObservers`: progress, epochs,
        cancel and stop requests, a look after every step).
    :param resume: continue from ``output/training_state.pt`` when present; False starts
        over and overwrites the folder's model.
    :returns: a :class:`TrainingResult`.
    :raises InputError: for bad data or options, naming the pair, key or option.
    :raises CancelledError: when ``observers.should_cancel`` asked to stop.
    """
    parts, resolved = build_parts(
        data, output, settings or TrainingSettings(), base_model=base_model, augment=augment
    )
    trainer = Trainer(parts, resolved, observers)
    state = load_training_state(parts.folder) if resume else None
    return trainer.fit(state)
