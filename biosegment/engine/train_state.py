"""The resumable state of a training run, kept beside the model it is producing.

``<model folder>/training_state.pt`` holds what a killed or cancelled run needs to go on as if
it had never stopped: the weights, the optimizer's moments, the epoch and step counters, the
random generators' states, the metrics so far and the time already spent. When the run ends
the state shrinks to a small "finished" record, so a job restarted after its run completed
returns the finished model instead of training it again. The file is written to a
temporary name and renamed, so a crash while saving leaves the previous state intact, and read
with ``weights_only=True`` so the file can never run code.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from biosegment.errors import InputError
from biosegment.folder_names import TRAINING_STATE

__all__ = ["STATE_NAME", "STATE_VERSION", "save_training_state", "load_training_state"]

#: File name of the resumable state inside a model folder.
STATE_NAME = TRAINING_STATE
#: Bumped when the state's keys change incompatibly.
STATE_VERSION = 1


def save_training_state(folder: Path, state: dict) -> Path:
    """Write ``state`` to ``folder/training_state.pt`` atomically.

    :param folder: the model folder (created when missing).
    :param state: plain containers, numbers, strings and tensors only.
    :returns: the path written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_NAME
    temporary = folder / f".{STATE_NAME}.tmp"
    try:
        torch.save({**state, "version": STATE_VERSION}, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def load_training_state(folder: Path) -> dict | None:
    """Read the state saved in ``folder``, or None when there is none.

    :raises InputError: naming the file when it is damaged or from an incompatible version.
    """
    path = Path(folder) / STATE_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise InputError(
            f"cannot read training state ({type(exc).__name__}); delete it to start over",
            source=path,
        ) from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise InputError(
            "training state from an incompatible version; delete it to start over",
            source=path,
            where="version",
        )
    return state
