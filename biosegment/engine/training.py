"""Train a U-Net from ground truth or sparse annotations, from scratch or from a base model.

:func:`train_model` is the one entry point: it reads the labelled parts of the training data,
sets a validation part aside, and runs epochs of random augmented crops until an epoch count,
a step count or a wall-clock budget is reached. After every epoch it scores the held-out part,
writes TensorBoard curves to ``<model folder>/logs/``, saves the last model to
``<model folder>/last/`` and the best one so far to ``<model folder>/`` (``model.pytorch`` in the
``neuralnets`` key layout plus ``model.json``), and a resumable training state. A cancel
request is honoured between batches, after the state is saved; calling again with the same
folder resumes where the run stopped, as if it had never been interrupted.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biosegment.engine.augment import AugmentConfig
from biosegment.engine.checkpoint import load_model, save_model
from biosegment.engine.device import apply_threads, has_fast_bfloat16, resolve_device
from biosegment.engine.losses import SegmentationLoss
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.model_card import ModelCard, default_classes
from biosegment.engine.progress import TrainingProgress
from biosegment.engine.samples import (
    LabelledStack,
    SamplePool,
    TrainingPair,
    collect_stacks,
    describe_stacks,
    guard_masks,
    split_validation,
)
from biosegment.engine.teacher import classes_match, prior_weights, teach_stacks
from biosegment.engine.train_settings import SELECTION_METRICS, TrainingSettings
from biosegment.engine.train_state import load_training_state, save_training_state
from biosegment.engine.unet import UNet, size_multiple
from biosegment.engine.validation import evaluate_stacks, validation_label
from biosegment.errors import CancelledError, InputError
from biosegment.folder_names import LAST_EPOCH_DIR, MODEL_WEIGHTS, TRAINING_LOGS_DIR, TRAINING_STATE

__all__ = [
    "train_model",
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

_PRECISIONS = ("auto", "fp32", "bf16")
# The cosine schedule ends at this fraction of the initial learning rate, not at zero.
_FINAL_LR_FACTOR = 0.02
# Progress callbacks at most this often (seconds): job rows need no more.
_PROGRESS_INTERVAL = 1.0
# Training loss goes to TensorBoard every this many steps.
_LOG_EVERY = 10

ProgressCallback = Callable[[float, "float | None"], None]


@dataclass(slots=True)
class TrainingResult:
    """What a finished run produced."""

    folder: Path  #: the model folder: best model, last/, logs/, state
    card: ModelCard  #: the best model's card (metrics of every epoch inside)
    history: list[dict]  #: one record per epoch (epoch 0 = the base model, if any)
    best_epoch: int | None  #: the epoch saved as the model (None: no epoch completed)
    steps: int  #: optimizer steps taken in all sessions together
    elapsed_s: float  #: training time in all sessions together
    stopped_by: str  #: ``epochs``, ``max_steps``, ``time_budget`` or ``stopped`` (asked to)
    validation: str = "none"  #: how the validation part was chosen

    @property
    def checkpoint(self) -> Path:
        return self.folder / MODEL_WEIGHTS


def _autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 where the hardware computes it natively (it is then 1.5-2x faster), else fp32."""
    if precision not in _PRECISIONS:
        raise InputError(
            f"precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}",
            where="precision",
        )
    if precision == "bf16" or (precision == "auto" and has_fast_bfloat16(device)):
        return torch.bfloat16
    return None


def _learning_rate_factor(schedule: str, progress: float) -> float:
    """Multiplier of the initial learning rate at ``progress`` (0..1) through the run."""
    if schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    return _FINAL_LR_FACTOR + (1.0 - _FINAL_LR_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _as_pairs(training: Sequence, *, label: str) -> list[TrainingPair]:
    pairs = []
    for index, item in enumerate(training):
        if isinstance(item, TrainingPair):
            pairs.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            pairs.append(TrainingPair(item[0], item[1], name=f"{label} pair {index}"))
        else:
            raise InputError("expected (image, labels) pairs", where=f"{label}[{index}]")
    if not pairs:
        raise InputError("no training data given", where=label)
    return pairs


def _highest_label(stacks: Sequence[LabelledStack]) -> tuple[int, str]:
    highest, source = -1, ""
    for stack in stacks:
        ids = stack.labels[stack.labels != IGNORE_LABEL]
        if ids.size and int(ids.max()) > highest:
            highest, source = int(ids.max()), stack.source
    return highest, source


def _adapt_output_classes(model: UNet, num_classes: int) -> UNet:
    """A copy of ``model`` with ``num_classes`` outputs; shared class rows keep their weights.

    Fine-tuning a 2-class model on annotations with a third class keeps everything the base
    learned except the new class's output row, which starts from a fresh initialisation.
    """
    config = dict(model.config, num_classes=num_classes)
    adapted = UNet(**config)
    state = model.state_dict()
    fresh = adapted.state_dict()
    shared = min(model.num_classes, num_classes)
    for key in ("decoder.output.weight", "decoder.output.bias"):
        fresh[key][:shared] = state[key][:shared]
    state.update({key: fresh[key] for key in ("decoder.output.weight", "decoder.output.bias")})
    adapted.load_state_dict(state)
    return adapted


def _load_base(base_model) -> tuple[UNet, ModelCard, str]:
    if isinstance(base_model, tuple):
        model, card = base_model
        # Train a copy: the caller's network (perhaps serving segmentations) stays as it was.
        return copy.deepcopy(model), card, card.name or "base model"
    path = Path(base_model)
    model, card = load_model(path)
    return model, card, str(path)


def _class_list(classes, num_classes: int, fallback: list[dict] | None) -> list[dict]:
    if classes is None:
        chosen = (
            fallback if fallback and len(fallback) == num_classes else default_classes(num_classes)
        )
    else:
        chosen = [dict(entry) for entry in classes]
    ids = sorted(int(entry.get("id", -1)) for entry in chosen)
    if ids != list(range(num_classes)):
        raise InputError(f"classes must have ids 0..{num_classes - 1}, got {ids}", where="classes")
    return sorted(chosen, key=lambda entry: int(entry["id"]))


def _crop_shape(crop_size, dims: int, levels: int) -> tuple[int, ...]:
    size = (crop_size,) * dims if isinstance(crop_size, int) else tuple(int(c) for c in crop_size)
    multiple = size_multiple(levels)
    if len(size) != dims or any(c < multiple or c % multiple for c in size):
        raise InputError(
            f"crop size {crop_size} must give {dims} sizes, each a multiple of "
            f"{multiple} (2 ** levels)",
            where="crop_size",
        )
    return size


def _network(
    architecture: Mapping | None,
    base: tuple[UNet, ModelCard, str] | None,
    classes: Sequence[Mapping] | None,
    stacks: Sequence[LabelledStack],
) -> UNet:
    """The network to train: the base model (with an output row per class) or a new one."""
    highest, highest_source = _highest_label(stacks)
    if base is not None:
        model = base[0]
        wanted = len(classes) if classes is not None else max(model.num_classes, highest + 1)
        if wanted != model.num_classes:
            model = _adapt_output_classes(model, wanted)
    else:
        config = dict(architecture or {})
        config.setdefault(
            "num_classes", len(classes) if classes is not None else max(2, highest + 1)
        )
        try:
            model = UNet(**config)
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc), where="architecture") from None
    if highest >= model.num_classes:
        raise InputError(
            f"label id {highest} but the model has classes 0..{model.num_classes - 1}",
            source=highest_source,
            where="labels",
        )
    return model


def _is_better(score: float | None, best: float | None, higher_is_better: bool) -> bool:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return best is None
    if best is None:
        return True
    return score > best if higher_is_better else score < best


def train_model(
    *,
    training: Sequence,
    output: Path | str,
    settings: TrainingSettings | None = None,
    architecture: Mapping | None = None,
    base_model: Path | str | tuple[UNet, ModelCard] | None = None,
    classes: Sequence[Mapping] | None = None,
    name: str | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    max_steps: int | None = None,
    time_budget_s: float | None = None,
    crop_size: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    lr_schedule: str | None = None,
    weight_decay: float | None = None,
    dice_weight: float | None = None,
    class_weights: Sequence[float] | str | None = None,
    augment: AugmentConfig | None = None,
    validation: Sequence | None = None,
    validation_fraction: float | None = None,
    select_best_by: str | None = None,
    boundary_class: int | None = None,
    seed: int | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    resume: bool = True,
    parent: str | None = None,
    provenance: Mapping | None = None,
    normalisation: Mapping | None = None,
    on_progress: ProgressCallback | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    on_step: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train (or fine-tune) a U-Net and write it to a model folder.

    :param training: ``(image, labels)`` pairs or :class:`TrainingPair` objects. Images are
        ``(z, y, x)`` / ``(y, x)`` arrays or volume readers; labels are class ids with 255 for
        unlabelled pixels: a same-shaped array (dense ground truth, or unpainted slices all
        255) or a mapping ``{z: (y, x) slice}`` of annotated slices.
    :param output: the model folder to write (``models/<model>/``); created when missing.
    :param settings: every option at once (:class:`TrainingSettings`: budget, network,
        crops, optimiser, validation, precision, threads). The keyword options below, where
        given, override the matching field; without ``settings`` at least one of
        ``epochs``, ``max_steps`` or ``time_budget_s`` must be given.
    :param architecture: U-Net keyword arguments (``dims``, ``feature_maps``, ``levels``,
        ``norm``, ``num_classes``) for a new network, over the settings' network; ignored
        when ``base_model`` is given.
    :param base_model: a model file or folder, or a loaded ``(UNet, ModelCard)``: its weights
        are the starting point (fine-tuning). Extra classes get a new output row.
    :param classes: ``[{"id", "name", "color"}]`` for ids ``0..N-1``; defaults to the base
        model's classes or generic names.
    :param name: the model's name in its card (default: the folder name).
    :param epochs: number of epochs; an epoch is ``steps_per_epoch`` batches.
    :param steps_per_epoch: batches per epoch; by default enough crops to cover the labelled
        pixels once, at least 50, so validation stays a small share of the time.
    :param max_steps: stop after this many optimizer steps in total.
    :param time_budget_s: stop when this much wall-clock time has been spent in total
        (validation and saving included). At least one stop condition must be given.
    :param crop_size: crop edge (or one size per axis), a multiple of ``2 ** levels``.
    :param batch_size: crops per optimizer step.
    :param learning_rate: the AdamW learning rate at the start.
    :param lr_schedule: ``cosine`` (decays to 2 % over the run, by steps, epochs or time,
        whichever ends first) or ``constant``.
    :param weight_decay: AdamW's decoupled weight decay.
    :param dice_weight: weight of a soft Dice term added to cross-entropy (0 = none).
    :param class_weights: cross-entropy weight per class, or ``"auto"``: inverse label
        frequencies of the training part, capped at 10 times the smallest.
    :param augment: augmentations; default flips, rotations and intensity changes.
    :param validation: explicit held-out pairs; when None, ``validation_fraction`` of the
        labelled slices (or of each slice's labelled region, with few slices) is held out.
    :param validation_fraction: share held out when ``validation`` is None; 0 = none, and
        then the last epoch is the model.
    :param select_best_by: ``val_loss``, ``pixel_error``, ``mean_iou`` or ``mean_dice``.
    :param boundary_class: membrane class id; adds Rand error and VI to validation scores.
    :param seed: seeds initialisation, crop choice and augmentation. Runs without a time
        budget are repeatable: the same seed gives the same weights on the same CPU.
    :param device: ``auto``, ``cpu``, ``cuda``, ... (see :func:`resolve_device`).
    :param precision: ``auto`` (bf16 autocast where the hardware has native bf16), ``fp32``
        or ``bf16``. Weights and optimizer stay float32 either way.
    :param resume: continue from ``output/training_state.pt`` when present; False starts
        over and overwrites the folder's model.
    :param parent: location of the base model to record in the card (default: its path).
    :param provenance: extra facts for the card's ``training`` section (data source, command).
    :param normalisation: how raw pixels are scaled (a model card entry, see
        :mod:`biosegment.engine.intensity`); default: the base model's, else the dtype range.
    :param on_progress: ``(fraction 0..1, eta seconds or None)``, at most once a second.
    :param on_epoch: called with each epoch's record (also stored in the card).
    :param should_cancel: polled before every batch; True saves a resumable state and
        raises :class:`CancelledError`.
    :param on_step: called after every optimizer step with the running loop, seen as a
        :class:`~biosegment.engine.progress.TrainingProgress` (new strokes join through its
        ``replace_training`` without a restart).
    :param should_stop: polled before every batch; True ends the run as a budget would: the
        epoch in progress is closed (validated) and the best weights are the model, with
        ``stopped_by`` ``"stopped"``.
    :returns: a :class:`TrainingResult`.
    :raises InputError: for bad data or parameters, naming the pair, key or argument.
    :raises CancelledError: when ``should_cancel`` asked to stop.
    """
    if settings is None and epochs is None and max_steps is None and time_budget_s is None:
        raise InputError(
            "give epochs, max_steps or time_budget_s to say when to stop", where="epochs"
        )
    settings = _merged_settings(
        settings,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        max_steps=max_steps,
        minutes=None if time_budget_s is None else time_budget_s / 60.0,
        crop_size=crop_size,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lr_schedule=lr_schedule,
        weight_decay=weight_decay,
        dice_weight=dice_weight,
        class_weights=class_weights,
        validation_fraction=validation_fraction,
        select_best_by=select_best_by,
        seed=seed,
        device=None if device is None else str(device),
        precision=precision,
    )
    if settings.threads:
        apply_threads(settings.threads)
    folder = Path(output)
    torch_device = resolve_device(device if device is not None else (settings.device or "auto"))
    autocast_dtype = _autocast_dtype(torch_device, settings.precision)
    pairs = _as_pairs(training, label="training")

    # Seed before building the network: its initial weights are part of the repeatable run.
    torch.manual_seed(settings.seed)
    base = _load_base(base_model) if base_model is not None else None
    settings = settings.for_start(fine_tune=base is not None)
    network = {**settings.network(), **dict(architecture or {})}
    dims = base[0].dims if base else int(network["dims"])
    if normalisation is None:
        normalisation = dict(base[1].normalisation) if base else ModelCard().normalisation
    stacks = collect_stacks(pairs, dims=dims, normalisation=normalisation)
    if validation is not None:
        validation_stacks = collect_stacks(
            _as_pairs(validation, label="validation"), dims=dims, normalisation=normalisation
        )
        train_stacks, validation_method = stacks, "given"
    else:
        train_stacks, validation_stacks, validation_method = split_validation(
            stacks, fraction=settings.validation_fraction
        )
    model = _network(network, base, classes, [*stacks, *validation_stacks])
    class_list = _class_list(classes, model.num_classes, base[1].classes if base else None)
    crop_shape = _crop_shape(settings.crop_size, model.dims, model.levels)
    teacher = None
    if settings.keep_base > 0 and base is not None and classes_match(base[1].classes, class_list):
        # The base model's own classes on unpainted pixels: predicted once, before training.
        teacher = _Teacher(copy.deepcopy(model).to(torch_device))
        teacher.teach(train_stacks, device=torch_device, autocast_dtype=autocast_dtype)
    pool = SamplePool(train_stacks, crop_size=crop_shape, augment=augment or AugmentConfig())
    steps_per_epoch = settings.steps_per_epoch
    if steps_per_epoch is None:
        coverage = math.ceil(pool.labelled_pixels / (settings.batch_size * math.prod(crop_shape)))
        steps_per_epoch = min(max(coverage, 50), 1000)
    weights = settings.class_weights
    if weights is None and teacher is not None:
        # strokes weighted to the class shares the base model sees on the training slices
        weights = prior_weights(train_stacks, model.num_classes)
    if weights == "auto":
        weights = automatic_class_weights(train_stacks, model.num_classes)
    if weights is not None and len(weights) != model.num_classes:
        raise InputError(
            f"{len(weights)} class weights for {model.num_classes} classes",
            where="class_weights",
        )

    run = _TrainingRun(
        folder=folder,
        model=model.to(torch_device),
        device=torch_device,
        autocast_dtype=autocast_dtype,
        pool=pool,
        validation_stacks=validation_stacks,
        class_list=class_list,
        boundary_class=boundary_class,
        batch_size=settings.batch_size,
        epochs=settings.epochs,
        steps_per_epoch=int(steps_per_epoch),
        max_steps=settings.max_steps,
        time_budget_s=settings.time_budget_s,
        learning_rate=settings.learning_rate,
        lr_schedule=settings.lr_schedule,
        select_best_by=settings.select_best_by,
        seed=settings.seed,
        loss=SegmentationLoss(
            num_classes=model.num_classes,
            dice_weight=settings.dice_weight,
            class_weights=None if weights is None else list(weights),
            keep_base=settings.keep_base,
            smoothness=settings.smoothness,
        ),
        optimizer=torch.optim.AdamW(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        ),
        on_progress=on_progress,
        on_epoch=on_epoch,
        should_cancel=should_cancel,
        on_step=on_step,
        should_stop=should_stop,
    )
    run.sources = _TrainingSources(dims=dims, normalisation=dict(normalisation))
    run.teacher = teacher
    fraction = settings.validation_fraction if validation is None else None
    validation_entry = {
        "method": validation_method,
        "fraction": fraction,
        "label": validation_label(validation_method, fraction),
        "data": describe_stacks(validation_stacks),
    }
    run.card_template = ModelCard(
        name=name or folder.name,
        classes=class_list,
        parent=(parent or base[2]) if base else parent,
        normalisation=dict(normalisation),
        pixel_size=dict(base[1].pixel_size) if base else {},
        training={
            "data": describe_stacks(train_stacks),
            "validation": validation_entry,
            "params": {
                **settings.as_dict(),
                "time_budget_s": settings.time_budget_s,
                "steps_per_epoch": int(steps_per_epoch),
                "crop_size": list(crop_shape),
                "class_weights": None if weights is None else [float(w) for w in weights],
                "keep_base": settings.keep_base if teacher is not None else 0.0,
                "augment": (augment or AugmentConfig()).as_dict(),
                "device": str(torch_device),
                "precision": "bf16" if autocast_dtype is not None else "fp32",
                "threads": torch.get_num_threads(),
            },
            **({"provenance": dict(provenance)} if provenance else {}),
        },
    )
    state = load_training_state(folder) if resume else None
    result = run.execute(state, evaluate_base=base_model is not None)
    result.validation = validation_method
    return result


def _merged_settings(settings: TrainingSettings | None, **overrides) -> TrainingSettings:
    """``settings`` (or the defaults) with the keyword options that were given."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if settings is None:
        return TrainingSettings.from_dict(given)
    if {"minutes", "epochs", "max_steps"} & set(given):
        # A budget given by keyword replaces the settings' budget instead of joining it.
        given = {"minutes": None, "epochs": None, "max_steps": None, **given}
    return settings.replace(**given)


def automatic_class_weights(stacks: Sequence[LabelledStack], num_classes: int) -> list[float]:
    """Cross-entropy weights from label frequencies: rare classes count more.

    Each class gets the inverse of its share of the labelled pixels, scaled so the weights
    average 1 and capped at 10 times the smallest; a class without pixels gets 1.
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    for stack in stacks:
        ids = stack.labels[stack.labels != IGNORE_LABEL]
        counts += np.bincount(ids.ravel(), minlength=num_classes)[:num_classes]
    present = counts > 0
    if not present.any():
        return [1.0] * num_classes
    inverse = np.where(present, counts.sum() / np.maximum(counts, 1), 0.0)
    inverse = np.minimum(inverse, inverse[present].min() * 10.0)
    inverse = inverse / inverse[present].mean()
    return [float(w) if present[i] else 1.0 for i, w in enumerate(inverse)]


class _Teacher:
    """The base model as it was before training, and its predictions of the training slices."""

    def __init__(self, model: UNet):
        self.model = model
        self.known: dict = {}

    def teach(self, stacks, *, device: torch.device, autocast_dtype) -> None:
        self.known = teach_stacks(
            stacks, self.model, device=device, autocast_dtype=autocast_dtype, known=self.known
        )


@dataclass(frozen=True, slots=True)
class _TrainingSources:
    """How training material is read, kept for reading it again mid-run."""

    dims: int
    normalisation: dict


class _TrainingRun:
    """The loop of one training run: batches, epochs, saving, resuming, cancelling."""

    def __init__(
        self,
        *,
        folder: Path,
        model: UNet,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
        pool: SamplePool,
        validation_stacks: list[LabelledStack],
        class_list: list[dict],
        boundary_class: int | None,
        batch_size: int,
        epochs: int | None,
        steps_per_epoch: int,
        max_steps: int | None,
        time_budget_s: float | None,
        learning_rate: float,
        lr_schedule: str,
        select_best_by: str,
        seed: int,
        loss: SegmentationLoss,
        optimizer: torch.optim.Optimizer,
        on_progress,
        on_epoch,
        should_cancel,
        on_step=None,
        should_stop=None,
    ):
        self.folder = folder
        self.model = model
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.pool = pool
        self.validation_stacks = validation_stacks
        self.class_names = [str(entry.get("name", entry["id"])) for entry in class_list]
        self.boundary_class = boundary_class
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.max_steps = max_steps
        self.time_budget_s = time_budget_s
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.select_best_by = select_best_by
        self.loss = loss
        self.optimizer = optimizer
        self.on_progress = on_progress
        self.on_epoch = on_epoch
        self.should_cancel = should_cancel
        self.on_step = on_step
        self.should_stop = should_stop
        self.sources: _TrainingSources | None = None
        self.teacher: _Teacher | None = None
        self.last_loss: float | None = None
        self.card_template: ModelCard | None = None
        self.rng = np.random.default_rng(seed)
        # Counters and records; restored from a saved state on resume.
        self.step = 0
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0
        self.epoch_loss_sum = 0.0
        self.history: list[dict] = []
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.elapsed_before = 0.0
        self._session_start = 0.0
        self._last_progress = -math.inf
        self._validation_seconds = 0.0
        self._step_seconds = 0.0
        self.writer = None

    # -- time and progress -------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self._session_start)

    def progress(self) -> float:
        fractions = []
        if self.epochs is not None:
            fractions.append(
                (self.epoch + self.step_in_epoch / self.steps_per_epoch) / max(self.epochs, 1)
            )
        if self.max_steps is not None:
            fractions.append(self.step / max(self.max_steps, 1))
        if self.time_budget_s is not None:
            fractions.append(self.elapsed() / self.time_budget_s if self.time_budget_s > 0 else 1.0)
        return min(max(fractions), 1.0)

    def _report_progress(self, *, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_progress < _PROGRESS_INTERVAL:
            return
        self._last_progress = now
        fraction = self.progress()
        elapsed = self.elapsed()
        eta = elapsed * (1.0 - fraction) / fraction if fraction > 0 else None
        self.on_progress(fraction, eta)

    def _stop_reason(self) -> str | None:
        if self.epochs is not None and self.epoch >= self.epochs:
            return "epochs"
        if self.max_steps is not None and self.step >= self.max_steps:
            return "max_steps"
        if self.time_budget_s is not None:
            # Leave room for the step and the end-of-epoch validation that would follow.
            needed = self._step_seconds + self._validation_seconds
            if self.elapsed() + needed > self.time_budget_s:
                return "time_budget"
        return None

    # -- state -------------------------------------------------------------------------------
    def _restore(self, state: dict) -> None:
        if state.get("architecture") != self.model.config:
            raise InputError(
                f"the saved run trained a U-Net {state.get('architecture')}, not "
                f"{self.model.config}; use another folder or start over",
                source=self.folder / TRAINING_STATE,
                where="architecture",
            )
        self.history = list(state["history"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]
        self.elapsed_before = float(state["elapsed_s"])
        if state.get("finished"):
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.epoch_loss_sum = float(state["epoch_loss_sum"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])

    def _save_state(self, *, finished: bool = False, stopped_by: str | None = None) -> None:
        state = {
            "architecture": dict(self.model.config),
            "history": self.history,
            "step": self.step,
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "elapsed_s": self.elapsed(),
            "finished": finished,
            "stopped_by": stopped_by,
        }
        if not finished:
            state.update(
                {
                    "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                    "optimizer": self.optimizer.state_dict(),
                    "step_in_epoch": self.step_in_epoch,
                    "epoch_loss_sum": self.epoch_loss_sum,
                    "numpy_rng": self.rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                }
            )
        save_training_state(self.folder, state)

    def card(self) -> ModelCard:
        """The card the weights of this moment would be saved with."""
        return self._card()

    @property
    def training_pixels(self) -> int:
        """Labelled pixels the run trains on now (strokes that joined included)."""
        return self.pool.labelled_pixels

    def base_scores(self) -> dict | None:
        """The base model's held-out scores, measured before the first step (None: no base
        model, or nothing held out)."""
        return next((r for r in self.history if r.get("epoch") == 0), None)

    def score_now(self) -> dict | None:
        """Held-out scores of the weights of this moment (None: nothing held out).

        Cheap enough for every live snapshot: only windows holding held-out strokes are
        predicted. The time it takes counts against a time budget like any other.
        """
        if not self.validation_stacks:
            return None
        record = evaluate_stacks(
            self.model,
            self.validation_stacks,
            device=self.device,
            class_names=self.class_names,
            boundary_class=self.boundary_class,
            autocast_dtype=self.autocast_dtype,
        )
        record.update(step=self.step, epoch=self.epoch, elapsed_s=round(self.elapsed(), 2))
        return record

    def replace_training(self, training: Sequence) -> int:
        """Train on ``training`` from the next batch on; returns its labelled pixel count.

        ``training`` is the whole training material again (``(image, labels)`` pairs), read
        as at the start. Pixels held out for validation (and the guard band around them)
        stay out of training, so the validation figure keeps scoring pixels the network
        never learnt from.
        """
        if self.sources is None:
            raise RuntimeError("replace_training needs a run started by train_model")
        stacks = collect_stacks(
            _as_pairs(training, label="training"),
            dims=self.sources.dims,
            normalisation=self.sources.normalisation,
        )
        held = guard_masks(self.validation_stacks)
        for stack in stacks:
            for i in range(stack.labels.shape[0]):
                mask = held.get((stack.source, stack.z_start + i))
                if mask is not None:
                    stack.labels[i][mask] = IGNORE_LABEL
        if self.teacher is not None:
            self.teacher.teach(stacks, device=self.device, autocast_dtype=self.autocast_dtype)
        self.pool = SamplePool(stacks, crop_size=self.pool.crop_size, augment=self.pool.augment)
        return self.pool.labelled_pixels

    def _card(self, *, stopped_by: str | None = None) -> ModelCard:
        template = self.card_template
        training = dict(template.training)
        training.update(
            {
                "steps": self.step,
                "epochs_completed": self.epoch,
                "elapsed_s": round(self.elapsed(), 1),
                "best_epoch": self.best_epoch,
                "stopped_by": stopped_by,
            }
        )
        return ModelCard(
            name=template.name,
            classes=template.classes,
            normalisation=template.normalisation,
            training=training,
            metrics=list(self.history),
            parent=template.parent,
            pixel_size=dict(template.pixel_size),
        )

    # -- the loop ----------------------------------------------------------------------------
    def execute(self, state: dict | None, *, evaluate_base: bool) -> TrainingResult:
        self._session_start = time.perf_counter()
        if state is not None:
            self._restore(state)
            if state.get("finished"):
                return self._result(state.get("stopped_by") or "epochs")
        # Imported here: TensorBoard's writer pulls in protobuf and takes a second to import.
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            log_dir=str(self.folder / "logs"), purge_step=self.step if state is not None else None
        )
        try:
            if state is None and evaluate_base and self.validation_stacks:
                # Epoch 0: how good the base model is before fine-tuning starts.
                self._finish_epoch(batches=0, record_only=True)
            stopped_by = self._loop()
            self._save_state(finished=True, stopped_by=stopped_by)
            if self.on_progress is not None:
                # A time budget stops a little early (no step may overrun it): say "done".
                self.on_progress(1.0, 0.0)
            return self._result(stopped_by)
        finally:
            self.writer.close()

    def _loop(self) -> str:
        self.model.train()
        while True:
            reason = self._stop_reason()
            if reason is not None:
                if self.step_in_epoch:  # a budget ran out mid-epoch: close that epoch
                    self._finish_epoch(batches=self.step_in_epoch)
                return reason
            if self.should_cancel is not None and self.should_cancel():
                self._cancel()
            if self.step and self.should_stop is not None and self.should_stop():
                if self.step_in_epoch:
                    self._finish_epoch(batches=self.step_in_epoch)
                return "stopped"
            self._train_step()
            if self.on_step is not None:
                self.on_step(self)
            if self.step_in_epoch >= self.steps_per_epoch:
                self._finish_epoch(batches=self.step_in_epoch)

    def _train_step(self) -> None:
        started = time.perf_counter()
        factor = _learning_rate_factor(self.lr_schedule, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * factor
        images, labels = self.pool.draw_batch(self.rng, self.batch_size)
        images = torch.from_numpy(images).to(self.device)
        labels = torch.from_numpy(labels).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            logits = self.model(images)
        loss = self.loss(logits, labels, images)
        loss.backward()
        self.optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"training loss became {value} at step {self.step}; try a lower learning rate"
            )
        self.step += 1
        self.step_in_epoch += 1
        self.epoch_loss_sum += value
        self.last_loss = value
        if self.step % _LOG_EVERY == 0:
            self.writer.add_scalar("train/loss", value, self.step)
            self.writer.add_scalar("train/learning_rate", self.learning_rate * factor, self.step)
        self._step_seconds = time.perf_counter() - started
        self._report_progress()

    def _finish_epoch(self, *, batches: int, record_only: bool = False) -> None:
        started = time.perf_counter()
        epoch = self.epoch if record_only else self.epoch + 1
        record = {
            "epoch": epoch,
            "step": self.step,
            "train_loss": self.epoch_loss_sum / batches if batches else None,
            "learning_rate": self.learning_rate
            * _learning_rate_factor(self.lr_schedule, self.progress()),
        }
        if self.validation_stacks:
            record.update(
                evaluate_stacks(
                    self.model,
                    self.validation_stacks,
                    device=self.device,
                    class_names=self.class_names,
                    boundary_class=self.boundary_class,
                    autocast_dtype=self.autocast_dtype,
                )
            )
            self._validation_seconds = time.perf_counter() - started
        record["elapsed_s"] = round(self.elapsed(), 2)
        self.history.append(record)
        self._log_epoch(record)
        if not record_only:
            self.epoch = epoch
            self.step_in_epoch = 0
            self.epoch_loss_sum = 0.0
            score = record.get(self.select_best_by) if self.validation_stacks else None
            improved = not self.validation_stacks or _is_better(
                score, self.best_score, SELECTION_METRICS[self.select_best_by]
            )
            if improved:
                self.best_score = score
                self.best_epoch = epoch
            card = self._card()
            save_model(self.model, card, self.folder / LAST_FOLDER)
            if improved:
                save_model(self.model, self._card(), self.folder)
            self._save_state()
        if self.on_epoch is not None:
            self.on_epoch(dict(record))
        self._report_progress(force=True)

    def _log_epoch(self, record: dict) -> None:
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                self.writer.add_scalar(f"epoch/{key}", value, self.step)
            elif isinstance(value, dict):
                for class_name, score in value.items():
                    if score is not None:
                        self.writer.add_scalar(f"epoch/{key}/{class_name}", score, self.step)
        self.writer.flush()

    def _cancel(self) -> None:
        self._save_state()
        save_model(self.model, self._card(stopped_by="cancelled"), self.folder / LAST_FOLDER)
        self._report_progress(force=True)
        raise CancelledError(
            f"training cancelled at step {self.step}; train again with the "
            f"same folder to resume ({self.folder})"
        )

    def _result(self, stopped_by: str) -> TrainingResult:
        card = self._card(stopped_by=stopped_by)
        if self.best_epoch is not None and (self.folder / MODEL_WEIGHTS).is_file():
            # The top-level card also records how the whole run ended.
            best_model, best_card = load_model(self.folder)
            best_card.training = card.training
            best_card.metrics = card.metrics
            save_model(best_model, best_card, self.folder)
            card = best_card
        return TrainingResult(
            folder=self.folder,
            card=card,
            history=list(self.history),
            best_epoch=self.best_epoch,
            steps=self.step,
            elapsed_s=self.elapsed(),
            stopped_by=stopped_by,
        )
