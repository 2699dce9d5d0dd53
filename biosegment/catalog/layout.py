"""The data folder's conventions (SPEC 2), in one place, for the scan and the setup reconciler.

Where does a dataset folder keep its image stack and its ground truth? Where is the checkpoint of
a model named in ``setup.json`` without a location? Which file of a segmentation folder holds the
labels? These answers are shared by :mod:`~biosegment.catalog.scan` (which walks the folder) and
:mod:`~biosegment.catalog.reconcile` (which follows ``setup.json``), so both give one thing the
same location and the two never register it twice. Locations are POSIX-style and relative to the
data root; nothing here reads file contents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biosegment.catalog.probe import image_files, volume_location
from biosegment.catalog.setup_file import normalise_location
from biosegment.folder_names import (
    LABELS_DIR,
    MODEL_SUFFIX,
    MODEL_WEIGHTS,
    MODELS_DIR,
    RAW_DIR,
    SEGMENTATION_LABELS,
    SEGMENTATION_LABELS_ZARR,
    SEGMENTATIONS_DIR,
)
from biosegment.paths import resolve_inside

__all__ = [
    "LEGACY_ANNOTATIONS",
    "DatasetLayout",
    "dataset_layout",
    "legacy_ground_truth",
    "model_weights_location",
    "segmentation_volume_location",
    "join",
]

LEGACY_ANNOTATIONS = "annotations.json"


@dataclass(frozen=True, slots=True)
class DatasetLayout:
    """Where a dataset's pieces are: its volume (None if it has no images) and ground truth."""

    volume: str | None
    ground_truth: str | None
    searched: str  #: the folder that should hold the images, for error messages


def join(*parts: str) -> str:
    """Join location parts with ``/`` and normalise."""
    return normalise_location("/".join(parts))


def dataset_layout(root: Path, location: str) -> DatasetLayout:
    """Resolve a dataset location (``EM/<name>``, its ``raw/`` inside, or a stack file).

    ``EM/<name>/raw/`` holds the images when present (with ground truth in ``labels/`` beside
    it); otherwise the folder itself does. A folder with a single TIFF file means that file.
    """
    path = resolve_inside(root, location)
    if path.is_file():
        return DatasetLayout(volume=location, ground_truth=None, searched=location)
    raw, labels = join(location, RAW_DIR), join(location, LABELS_DIR)
    if resolve_inside(root, raw).is_dir():
        return DatasetLayout(
            volume=_volume_in(root, raw), ground_truth=_volume_in(root, labels), searched=raw
        )
    return DatasetLayout(volume=_volume_in(root, location), ground_truth=None, searched=location)


def legacy_ground_truth(root: Path, dataset: str) -> str | None:
    """Ground truth in the older layout: ``segmentations/<dataset>/labels/``."""
    return _volume_in(root, join(SEGMENTATIONS_DIR, dataset, LABELS_DIR))


def model_weights_location(root: Path, title: str) -> str | None:
    """The checkpoint of a model named ``title``: ``models/<title>/model.pytorch`` or
    ``models/<title>.pytorch``, whichever exists."""
    for candidate in (
        join(MODELS_DIR, title, MODEL_WEIGHTS),
        join(MODELS_DIR, title + MODEL_SUFFIX),
    ):
        if resolve_inside(root, candidate).is_file():
            return candidate
    return None


def segmentation_volume_location(root: Path, location: str) -> str | None:
    """The label volume of a segmentation: the file itself, ``labels.tif`` or
    ``labels.ome.zarr`` in its folder, or the folder when it holds slices. None when there is
    nothing (yet)."""
    path = resolve_inside(root, location)
    if path.is_file():
        return location
    if (path / SEGMENTATION_LABELS).is_file():
        return join(location, SEGMENTATION_LABELS)
    if (path / SEGMENTATION_LABELS_ZARR).is_dir():
        return join(location, SEGMENTATION_LABELS_ZARR)
    if image_files(path):
        return location
    return None


def _volume_in(root: Path, folder: str) -> str | None:
    path = resolve_inside(root, folder)
    found = volume_location(path) if path.is_dir() else None
    if found is None:
        return None
    return folder if found == path else join(folder, found.name)
