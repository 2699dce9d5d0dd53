"""Put a new model into ``models/`` without touching any model already there.

A model named ``N`` is the folder ``models/N/`` or, from the older BioSegment, the file
``models/N.pytorch`` with its card ``models/N.json``. A new model is written to a hidden folder
beside its place first (the data-folder watcher ignores dot names) and renamed into place in
one step, so a reader sees either no model or the whole one. When the name is taken the caller
decides: refuse (the default, :class:`ModelExistsError` names what is there), or pass
``make_room``, which gets the existing paths and moves them away (to the data folder's trash)
just before the rename.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from biosegment.engine.checkpoint import CHECKPOINT_NAME, save_model
from biosegment.engine.model_card import ModelCard
from biosegment.engine.unet import UNet
from biosegment.errors import InputError
from biosegment.folder_names import MODEL_SUFFIX, MODELS_DIR

__all__ = ["ModelExistsError", "existing_model_paths", "model_folder_name", "publish_model"]


class ModelExistsError(InputError):
    """A model of that name is already in ``models/``; ``paths`` are its files and folders."""

    def __init__(self, name: str, paths: list[Path]):
        self.name = name
        self.paths = paths
        places = ", ".join(f"{MODELS_DIR}/{p.name}" for p in paths)
        super().__init__(
            f"model {name!r} already exists ({places}); nothing was changed", where="name"
        )


def model_folder_name(name: str) -> str:
    """A model name made safe as one folder name (letters, digits, ``-_.``; others -> ``_``)."""
    kept = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name.strip())
    return kept.strip("._") or "imported"


def existing_model_paths(models_dir: Path, folder_name: str) -> list[Path]:
    """What ``models/`` already holds under that model name: ``N/``, ``N.pytorch``, ``N.json``."""
    candidates = [folder_name, f"{folder_name}{MODEL_SUFFIX}", f"{folder_name}.json"]
    return [Path(models_dir) / c for c in candidates if os.path.lexists(Path(models_dir) / c)]


def publish_model(
    model: UNet,
    card: ModelCard,
    models_dir: Path,
    folder_name: str,
    *,
    make_room: Callable[[list[Path]], object] | None = None,
) -> Path:
    """Write ``models/<folder_name>/`` as a new model and return its ``model.pytorch``.

    :param make_room: called with the existing paths of that name (see
        :func:`existing_model_paths`) once the new model is written, to move them away;
        without it an existing name is refused before anything is written.
    :raises ModelExistsError: when the name is taken and there is no ``make_room``.
    """
    models_dir = Path(models_dir)
    if existing_model_paths(models_dir, folder_name) and make_room is None:
        raise ModelExistsError(folder_name, existing_model_paths(models_dir, folder_name))
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".{folder_name}.{uuid.uuid4().hex[:8]}.new"
    try:
        save_model(model, card, staging)
        existing = existing_model_paths(models_dir, folder_name)
        if existing:
            if make_room is None:  # appeared while the model was written
                raise ModelExistsError(folder_name, existing)
            make_room(existing)
        final = models_dir / folder_name
        try:
            # A rename onto a folder that appeared meanwhile fails (it is not empty) or, when
            # it is empty, takes its place: either way nothing a person made is lost.
            os.rename(staging, final)
        except OSError:
            if not os.path.lexists(final):
                raise
            raise ModelExistsError(
                folder_name, existing_model_paths(models_dir, folder_name)
            ) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)  # our own unfinished copy
    return final / CHECKPOINT_NAME
