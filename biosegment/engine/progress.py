"""What a running training shows its observers, and the observers a run is given.

:class:`TrainingObservers` holds a run's callbacks (progress, epoch records, cancel and stop
requests, a look after every step); :func:`~biosegment.engine.training.train_model` passes them
to the :class:`~biosegment.engine.trainer.Trainer`. The ``on_step`` callback receives the loop
as a :class:`TrainingProgress` after every optimizer step (the live preview, strokes that join
a running job). Observers use only what is declared here; the loop's other parts are its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the protocol names these types only; importing it costs nothing
    from biosegment.engine.model_card import ModelCard
    from biosegment.engine.unet import UNet

__all__ = ["TrainingProgress", "TrainingObservers", "ProgressCallback"]

#: ``(fraction 0..1, eta seconds or None)``.
ProgressCallback = Callable[[float, "float | None"], None]


class TrainingProgress(Protocol):
    """A training run as its observers see it, between two optimizer steps."""

    step: int  #: optimizer steps taken
    epoch: int  #: epochs completed
    last_loss: float | None  #: the loss of the latest step
    history: list[dict]  #: one record per validated epoch (epoch 0: the base model)

    @property
    def model(self) -> UNet:
        """The network being trained (read it, never step it)."""
        ...

    @property
    def training_pixels(self) -> int:
        """Labelled pixels the run trains on now."""
        ...

    def elapsed(self) -> float:
        """Training seconds so far, earlier sessions of a resumed run included."""
        ...

    def card(self) -> ModelCard:
        """The model card the weights of this moment would be saved with."""
        ...

    def base_scores(self) -> dict | None:
        """The base model's held-out scores before the first step (None: none)."""
        ...

    def score_now(self) -> dict | None:
        """Held-out scores of the weights of this moment (None: nothing held out)."""
        ...

    def replace_training(self, training: Sequence) -> int:
        """Train on new material from the next batch on; returns its labelled pixels."""
        ...


@dataclass(frozen=True, slots=True)
class TrainingObservers:
    """The callbacks of one training run; each is optional.

    - ``on_progress(fraction, eta)``: the share done (0..1) and the seconds left (None while
      unknown), at most once a second, and 1.0 when the run ends.
    - ``on_epoch(record)``: each epoch's record (also stored in the card).
    - ``should_cancel()``: polled before every batch; True saves a resumable state and raises
      :class:`~biosegment.errors.CancelledError`.
    - ``on_step(run)``: after every optimizer step, with the loop as a
      :class:`TrainingProgress` (new strokes join through its ``replace_training``).
    - ``should_stop()``: polled before every batch after the first; True ends the run as a
      budget would: the epoch in progress is closed (validated), the best weights are the
      model, and ``stopped_by`` is ``"stopped"``.
    """

    on_progress: ProgressCallback | None = None
    on_epoch: Callable[[dict], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    on_step: Callable[[TrainingProgress], None] | None = None
    should_stop: Callable[[], bool] | None = None
