"""What a running training shows its observers: the public face of the training loop.

``train_model``'s ``on_step`` callback receives an object of this protocol after every
optimizer step (the live preview, strokes that join a running job). Observers use only what
is declared here; the loop's other parts are its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the protocol names these types only; importing it costs nothing
    from biosegment.engine.model_card import ModelCard
    from biosegment.engine.unet import UNet

__all__ = ["TrainingProgress"]


class TrainingProgress(Protocol):
    """A training run as its observers see it, between two optimizer steps."""

    step: int  #: optimizer steps taken
    epoch: int  #: epochs completed
    last_loss: float | None  #: the loss of the latest step
    history: list[dict]  #: one record per validated epoch (epoch 0: the base model)
    model: UNet  #: the network being trained (read it, never step it)

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
