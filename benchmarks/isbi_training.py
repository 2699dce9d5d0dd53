"""ISBI 2012 training and scoring shared by the training benchmark and the demo-model script.

Both train on ISBI 2012 train slices 0-24 and score on slices 25-29, as the old stack's
figures were measured (SPEC section 9). ISBI labels say 255 = cell interior and 0 = membrane;
BioSegment's classes are 0 = background (cell interior) and 1 = membrane, so labels are
converted on the way in. Data is read through the product's own volume readers.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from cpu_facts import cpu_model_and_flags

from biosegment.engine.inference import segment_volume
from biosegment.engine.metrics import segmentation_scores
from biosegment.engine.samples import TrainingPair
from biosegment.engine.unet import UNet
from biosegment.volumes import VolumeInfo, VolumeReader, open_volume

__all__ = [
    "ISBI_CLASSES",
    "TRAIN_SLICES",
    "TEST_SLICES",
    "default_isbi_folder",
    "isbi_training_pair",
    "isbi_labels",
    "isbi_test_labels",
    "predict_slices",
    "score_on_test_slices",
    "machine_note",
]

#: The demo model's classes (BioSegment ids, not ISBI's pixel values).
ISBI_CLASSES = [
    {"id": 0, "name": "background", "color": "#000000"},
    {"id": 1, "name": "membrane", "color": "#ff3030"},
]
TRAIN_SLICES = range(0, 25)
TEST_SLICES = range(25, 30)


def default_isbi_folder() -> Path:
    """``shared/data/isbi2012`` beside the repository (where CI and engineers keep it)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2012"


class _SliceRange(VolumeReader):
    """Slices ``z_range`` of an open volume, seen as a volume of their own (read lazily)."""

    def __init__(self, volume: VolumeReader, z_range: range):
        self._volume = volume
        self._z = z_range
        parent = volume.info
        self._info = VolumeInfo(
            path=parent.path,
            file_type=parent.file_type,
            shape=(len(z_range), *parent.shape[1:]),
            dtype=parent.dtype,
            voxel_size=parent.voxel_size,
        )

    @property
    def info(self) -> VolumeInfo:
        return self._info

    def read_slice(self, z: int) -> np.ndarray:
        return self._volume.read_slice(self._z[z])


def _membrane_ids(isbi_labels: np.ndarray) -> np.ndarray:
    # ISBI: 0 = membrane, 255 = cell interior -> BioSegment: 1 = membrane, 0 = background.
    return (isbi_labels == 0).astype(np.uint8)


def isbi_training_pair(folder: Path) -> TrainingPair:
    """Slices 0-24 of the ISBI training volume with their labels as class ids."""
    image = open_volume(folder / "train-volume.tif")
    with open_volume(folder / "train-labels.tif") as labels:
        planes = {z: _membrane_ids(labels.read_slice(z)) for z in TRAIN_SLICES}
    return TrainingPair(image=image, labels=planes, name="ISBI 2012 train-volume.tif z0-24")


def isbi_labels(folder: Path, slices: range = TEST_SLICES) -> np.ndarray:
    """Class ids of ``slices`` (default 25-29), ``(len(slices), 512, 512)``."""
    with open_volume(folder / "train-labels.tif") as labels:
        return _membrane_ids(labels.read_block(slices.start, slices.stop))


def isbi_test_labels(folder: Path) -> np.ndarray:
    """Class ids of slices 25-29, ``(5, 512, 512)``."""
    return isbi_labels(folder, TEST_SLICES)


def predict_slices(
    model: UNet, folder: Path, slices: range = TEST_SLICES
) -> tuple[np.ndarray, float]:
    """Class ids the product's inference gives for ``slices`` (default 25-29), and seconds taken."""
    with open_volume(folder / "train-volume.tif") as volume:
        part = _SliceRange(volume, slices)
        started = time.perf_counter()
        labels = segment_volume(part, model, device="cpu")
        return labels, time.perf_counter() - started


def score_on_test_slices(model: UNet, folder: Path) -> dict:
    """Pixel error, accuracy, membrane Dice/IoU, Rand error and VI on slices 25-29."""
    prediction, seconds = predict_slices(model, folder)
    scores = segmentation_scores(
        isbi_test_labels(folder),
        prediction,
        num_classes=2,
        class_names=["background", "membrane"],
        boundary_class=1,
    )
    return {
        "pixel_error": scores["pixel_error"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "membrane_dice": scores["dice"]["membrane"],
        "membrane_iou": scores["iou"]["membrane"],
        "rand_error": scores["rand_error"],
        "vi": scores["vi"],
        "vi_split": scores["vi_split"],
        "vi_merge": scores["vi_merge"],
        "predict_seconds": round(seconds, 2),
    }


def machine_note() -> dict:
    """Facts that qualify a timing: CPU model and flags, cores, torch threads, load average
    (the CPU may be shared)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    model, flags = cpu_model_and_flags()
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": None if load is None else [round(v, 2) for v in load],
        "note": "the machine may have been shared with other work while this ran",
    }
