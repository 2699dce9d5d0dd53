"""The engine: the U-Net, its checkpoints, inference and training.

Pure computation on arrays, files and torch devices; nothing here knows about the web UI, the
job queue or the catalog. Everything a caller needs is importable from this package
(``from biosegment.engine import load_model``).

Importing the package imports no torch: its names are loaded from their modules on first use
(PEP 562), so the web UI and the CLI can read the torch-free modules (``train_settings``,
``model_card``, ``label_output``) without paying for torch. Which module holds each name is
written once, in :data:`_HOMES`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - for readers and type checkers; loaded lazily below
    from biosegment.engine.augment import AugmentConfig
    from biosegment.engine.checkpoint import infer_architecture, load_model, save_model
    from biosegment.engine.device import resolve_device
    from biosegment.engine.inference import (
        BlockResult,
        InferenceSettings,
        assemble_parts,
        block_memory,
        block_plan,
        plan_blocks,
        segment_block,
        segment_volume,
    )
    from biosegment.engine.model_card import ModelCard
    from biosegment.engine.progress import TrainingObservers
    from biosegment.engine.samples import TrainingPair
    from biosegment.engine.train_data import TrainingData
    from biosegment.engine.trainer import Trainer, TrainingResult
    from biosegment.engine.training import train_model
    from biosegment.engine.unet import UNet, flops_per_voxel

__all__ = [
    "UNet",
    "ModelCard",
    "load_model",
    "save_model",
    "infer_architecture",
    "resolve_device",
    "flops_per_voxel",
    "InferenceSettings",
    "BlockResult",
    "segment_volume",
    "segment_block",
    "plan_blocks",
    "block_plan",
    "block_memory",
    "assemble_parts",
    "train_model",
    "Trainer",
    "TrainingData",
    "TrainingObservers",
    "TrainingResult",
    "TrainingPair",
    "AugmentConfig",
    "import_all",
]

# Public name -> the module of this package that defines it.
_HOMES = {
    "AugmentConfig": "augment",
    "infer_architecture": "checkpoint",
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "resolve_device": "device",
    "BlockResult": "inference",
    "InferenceSettings": "inference",
    "assemble_parts": "inference",
    "block_memory": "inference",
    "block_plan": "inference",
    "plan_blocks": "inference",
    "segment_block": "inference",
    "segment_volume": "inference",
    "ModelCard": "model_card",
    "TrainingObservers": "progress",
    "TrainingPair": "samples",
    "TrainingData": "train_data",
    "Trainer": "trainer",
    "TrainingResult": "trainer",
    "train_model": "training",
    "UNet": "unet",
    "flops_per_voxel": "unet",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def import_all() -> None:
    """Import every module behind this package's names now (torch included), in this thread.

    For a process whose threads would otherwise import parts of the engine for the first time
    at once (see :func:`biosegment.tasks.runner.import_engine`).
    """
    for home in sorted(set(_HOMES.values())):
        importlib.import_module(f"{__name__}.{home}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
