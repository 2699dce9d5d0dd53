"""The engine: the U-Net, its checkpoints, inference and training.

Pure computation on arrays, files and torch devices; nothing here knows about the web UI, the
job queue or the catalog. Everything a caller needs is importable from this package.
"""

from __future__ import annotations

from biosegment.engine.augment import AugmentConfig
from biosegment.engine.checkpoint import infer_architecture, load_model, save_model
from biosegment.engine.device import resolve_device
from biosegment.engine.inference import (
    BlockResult,
    InferenceSettings,
    assemble_parts,
    block_plan,
    plan_blocks,
    segment_block,
    segment_volume,
)
from biosegment.engine.model_card import ModelCard
from biosegment.engine.samples import TrainingPair
from biosegment.engine.training import TrainingResult, train_model
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
    "assemble_parts",
    "train_model",
    "TrainingResult",
    "TrainingPair",
    "AugmentConfig",
]
