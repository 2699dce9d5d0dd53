"""The training loop: a :class:`Trainer` receives built parts and settings, and runs.

Everything a run needs is built before the loop starts (see
:func:`biosegment.engine.train_setup.build_parts`): the network on its device, the sample
pool, the held-out stacks, the loss, the optimizer, the base model's teacher and the card the
weights are saved with. :meth:`Trainer.fit` draws batches and steps until an epoch count, a
step count or a wall-clock budget is reached; after every epoch it scores the held-out part,
writes TensorBoard curves to ``<model folder>/logs/``, saves the last model to ``last/``, the
best one so far to the folder itself, and a resumable state. A cancel request is honoured
between batches, after the state is saved. Observers see the loop as a
:class:`~biosegment.engine.progress.TrainingProgress`, which it implements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from biosegment.engine.checkpoint import load_model, save_model
from biosegment.engine.losses import SegmentationLoss
from biosegment.engine.metrics import IGNORE_LABEL
from biosegment.engine.model_card import ModelCard
from biosegment.engine.progress import TrainingObservers
from biosegment.engine.samples import LabelledStack, SamplePool, collect_stacks, guard_masks
from biosegment.engine.spread import spread_strokes
from biosegment.engine.teacher import Teacher
from biosegment.engine.train_data import as_pairs
from biosegment.engine.train_settings import SELECTION_METRICS, TrainingSettings
from biosegment.engine.train_state import save_training_state
from biosegment.engine.unet import UNet
from biosegment.engine.validation import evaluate_stacks
from biosegment.errors import CancelledError, InputError
from biosegment.folder_names import LAST_EPOCH_DIR, MODEL_WEIGHTS, TRAINING_LOGS_DIR, TRAINING_STATE

if TYPE_CHECKING:  # imported when the loop starts: TensorBoard takes a second to import
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["Trainer", "TrainingParts", "TrainingResult", "TrainingSources", "learning_rate_factor"]

# The cosine schedule ends at this fraction of the initial learning rate, not at zero.
_FINAL_LR_FACTOR = 0.02
# Progress callbacks at most this often (seconds): job rows need no more.
_PROGRESS_INTERVAL = 1.0
# Training loss goes to TensorBoard every this many steps.
_LOG_EVERY = 10


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


@dataclass(frozen=True, slots=True)
class TrainingSources:
    """How training material is read, kept for reading it again mid-run."""

    dims: int
    normalisation: dict


@dataclass(frozen=True, slots=True)
class TrainingParts:
    """Everything a :class:`Trainer` runs with, built before the first step."""

    folder: Path  #: the model folder written to
    model: UNet  #: the network, already on ``device``
    device: torch.device
    autocast_dtype: torch.dtype | None  #: bf16 autocast, or None for float32
    pool: SamplePool  #: draws the training batches
    validation_stacks: list[LabelledStack]  #: the held-out part (may be empty)
    loss: SegmentationLoss
    optimizer: torch.optim.Optimizer
    card_template: ModelCard  #: the card every save starts from
    sources: TrainingSources  #: how new material is read mid-run
    teacher: Teacher | None  #: the base model's view of unpainted pixels (keep_base)
    spread_seed: int | None  #: the seed strokes are spread with (None: they are not spread)
    boundary_class: int | None  #: adds Rand error and VI to validation scores
    evaluate_base: bool  #: score the starting weights as epoch 0 (a fine-tune)
    validation_method: str  #: how the held-out part was chosen


def learning_rate_factor(schedule: str, progress: float) -> float:
    """Multiplier of the initial learning rate at ``progress`` (0..1) through the run."""
    if schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    return _FINAL_LR_FACTOR + (1.0 - _FINAL_LR_FACTOR) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _is_better(score: float | None, best: float | None, higher_is_better: bool) -> bool:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return best is None
    if best is None:
        return True
    return score > best if higher_is_better else score < best


class Trainer:
    """The loop of one training run: batches, epochs, saving, resuming, cancelling.

    :param parts: the built parts (:func:`~biosegment.engine.train_setup.build_parts`).
    :param settings: the run's settings, resolved for its start: a learning rate and a number
        of steps per epoch are set (:func:`~biosegment.engine.train_setup.resolve_settings`).
    :param observers: the run's callbacks.
    """

    def __init__(
        self,
        parts: TrainingParts,
        settings: TrainingSettings,
        observers: TrainingObservers | None = None,
    ) -> None:
        if settings.learning_rate is None or settings.steps_per_epoch is None:
            raise ValueError("the settings need a learning rate and steps per epoch")
        self.folder = parts.folder
        self.model = parts.model
        self.device = parts.device
        self.autocast_dtype = parts.autocast_dtype
        self.pool = parts.pool
        self.validation_stacks = parts.validation_stacks
        self.loss = parts.loss
        self.optimizer = parts.optimizer
        self.card_template = parts.card_template
        self.sources = parts.sources
        self.teacher = parts.teacher
        self.spread_seed = parts.spread_seed
        self.boundary_class = parts.boundary_class
        self.evaluate_base = parts.evaluate_base
        self.validation_method = parts.validation_method
        self.class_names = [
            str(entry.get("name", entry["id"])) for entry in parts.card_template.classes
        ]
        self.batch_size = settings.batch_size
        self.epochs = settings.epochs
        self.steps_per_epoch = settings.steps_per_epoch
        self.max_steps = settings.max_steps
        self.time_budget_s = settings.time_budget_s
        self.learning_rate = settings.learning_rate
        self.lr_schedule = settings.lr_schedule
        self.select_best_by = settings.select_best_by
        self.observers = observers or TrainingObservers()
        self.last_loss: float | None = None
        self.rng = np.random.default_rng(settings.seed)
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
        self._writer: SummaryWriter | None = None

    # -- time and progress -------------------------------------------------------------------
    def elapsed(self) -> float:
        """Training seconds so far.

        :returns: seconds, earlier sessions of a resumed run included.
        """
        return self.elapsed_before + (time.perf_counter() - self._session_start)

    def progress(self) -> float:
        """How far the run is.

        :returns: the share done (0..1): the furthest of its budgets.
        """
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
        on_progress = self.observers.on_progress
        if on_progress is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_progress < _PROGRESS_INTERVAL:
            return
        self._last_progress = now
        fraction = self.progress()
        elapsed = self.elapsed()
        eta = elapsed * (1.0 - fraction) / fraction if fraction > 0 else None
        on_progress(fraction, eta)

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
        state: dict[str, Any] = {
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

    # -- what observers see (TrainingProgress) -----------------------------------------------
    def card(self) -> ModelCard:
        """The card the weights of this moment would be saved with.

        :returns: the card, with the history so far.
        """
        return self._card()

    @property
    def training_pixels(self) -> int:
        """Labelled pixels the run trains on now (strokes that joined included)."""
        return self.pool.labelled_pixels

    def base_scores(self) -> dict | None:
        """The base model's held-out scores, measured before the first step.

        :returns: the epoch-0 record; None without a base model or a held-out part.
        """
        return next((r for r in self.history if r.get("epoch") == 0), None)

    def _evaluate(self) -> dict:
        """The held-out scores of the weights of this moment."""
        return evaluate_stacks(
            self.model,
            self.validation_stacks,
            device=self.device,
            class_names=self.class_names,
            boundary_class=self.boundary_class,
            autocast_dtype=self.autocast_dtype,
        )

    def score_now(self) -> dict | None:
        """Held-out scores of the weights of this moment (None: nothing held out).

        Cheap enough for every live snapshot: only windows holding held-out strokes are
        predicted. The time it takes counts against a time budget like any other.

        :returns: the scores with ``step``, ``epoch`` and ``elapsed_s``.
        """
        if not self.validation_stacks:
            return None
        record = self._evaluate()
        record.update(step=self.step, epoch=self.epoch, elapsed_s=round(self.elapsed(), 2))
        return record

    def replace_training(self, training: Sequence) -> int:
        """Train on new material from the next batch on.

        Pixels held out for validation (and the guard band around them) stay out of training,
        so the validation figure keeps scoring pixels the network never learnt from.

        :param training: the whole training material again (``(image, labels)`` pairs), read
            as at the start.
        :returns: the labelled pixels it trains on now.
        """
        stacks = collect_stacks(
            as_pairs(training, label="training"),
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
        elif self.spread_seed is not None:
            # the classifier is fitted again on the strokes as they are now
            spread_strokes(stacks, num_classes=self.model.num_classes, seed=self.spread_seed)
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
    def fit(self, state: dict | None = None) -> TrainingResult:
        """Run until a budget is reached (or a stop or cancel request).

        :param state: a saved training state (:func:`~biosegment.engine.train_state.load_training_state`) to resume from;
            a finished run's state returns its result without training.
        :returns: what the run produced.
        :raises CancelledError: when ``observers.should_cancel`` asked to stop (the state is
            saved first).
        """
        self._session_start = time.perf_counter()
        if state is not None:
            self._restore(state)
            if state.get("finished"):
                return self._result(state.get("stopped_by") or "epochs")
        # Imported here: TensorBoard's writer pulls in protobuf and takes a second to import.
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(
            log_dir=str(self.folder / TRAINING_LOGS_DIR),
            purge_step=self.step if state is not None else None,
        )
        try:
            if state is None and self.evaluate_base and self.validation_stacks:
                # Epoch 0: how good the base model is before fine-tuning starts.
                self._finish_epoch(batches=0, record_only=True)
            stopped_by = self._loop()
            self._save_state(finished=True, stopped_by=stopped_by)
            if self.observers.on_progress is not None:
                # A time budget stops a little early (no step may overrun it): say "done".
                self.observers.on_progress(1.0, 0.0)
            return self._result(stopped_by)
        finally:
            self._writer.close()

    def _loop(self) -> str:
        observers = self.observers
        self.model.train()
        while True:
            reason = self._stop_reason()
            if reason is not None:
                if self.step_in_epoch:  # a budget ran out mid-epoch: close that epoch
                    self._finish_epoch(batches=self.step_in_epoch)
                return reason
            if observers.should_cancel is not None and observers.should_cancel():
                self._cancel()
            if self.step and observers.should_stop is not None and observers.should_stop():
                if self.step_in_epoch:
                    self._finish_epoch(batches=self.step_in_epoch)
                return "stopped"
            self._train_step()
            if observers.on_step is not None:
                observers.on_step(self)
            if self.step_in_epoch >= self.steps_per_epoch:
                self._finish_epoch(batches=self.step_in_epoch)

    def _train_step(self) -> None:
        started = time.perf_counter()
        factor = learning_rate_factor(self.lr_schedule, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate * factor
        batch_images, batch_labels = self.pool.draw_batch(self.rng, self.batch_size)
        images = torch.from_numpy(batch_images).to(self.device)
        labels = torch.from_numpy(batch_labels).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            logits = self.model(images)
        loss = self.loss(logits, labels)
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
        if self.step % _LOG_EVERY == 0 and self._writer is not None:
            self._writer.add_scalar("train/loss", value, self.step)
            self._writer.add_scalar("train/learning_rate", self.learning_rate * factor, self.step)
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
            * learning_rate_factor(self.lr_schedule, self.progress()),
        }
        if self.validation_stacks:
            record.update(self._evaluate())
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
            save_model(self.model, card, self.folder / LAST_EPOCH_DIR)
            if improved:
                save_model(self.model, self._card(), self.folder)
            self._save_state()
        if self.observers.on_epoch is not None:
            self.observers.on_epoch(dict(record))
        self._report_progress(force=True)

    def _log_epoch(self, record: dict) -> None:
        writer = self._writer
        if writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                writer.add_scalar(f"epoch/{key}", value, self.step)
            elif isinstance(value, dict):
                for class_name, score in value.items():
                    if score is not None:
                        writer.add_scalar(f"epoch/{key}/{class_name}", score, self.step)
        writer.flush()

    def _cancel(self) -> None:
        self._save_state()
        save_model(self.model, self._card(stopped_by="cancelled"), self.folder / LAST_EPOCH_DIR)
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
            validation=self.validation_method,
        )
