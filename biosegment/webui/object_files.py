"""Find a segmentation's objects: its instance volume, its object table and its object scores.

A segmentation folder (``segmentations/<dataset>/<name>/``) may hold, beside its class labels,
``instances.tif`` (or ``instances.ome.zarr``): one id per object, 0 for none; ``objects.csv``:
one row of measurements per object; and in ``segmentation.json`` the names of those two files
(``"instances"``, ``"objects"``) and ``"object_scores"``, the objects' scores against the
dataset's ground truth. Names the card gives are resolved inside the data folder, so a card
can never point the web server at a file outside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biosegment.errors import InputError, NotFoundError
from biosegment.folder_names import (
    SEGMENTATION_CARD,
    SEGMENTATION_LABELS,
    SEGMENTATION_LABELS_ZARR,
)
from biosegment.paths import relative_to_root, resolve_inside

__all__ = [
    "INSTANCES_TIFF",
    "INSTANCES_ZARR",
    "OBJECT_TABLE",
    "ObjectFiles",
    "find_object_files",
    "has_object_table",
    "instances_of",
    "object_scores_of",
]

INSTANCES_TIFF = "instances.tif"
INSTANCES_ZARR = "instances.ome.zarr"
OBJECT_TABLE = "objects.csv"
# A card is a few hundred bytes; anything far larger is not a card worth reading per request.
_CARD_MAX_BYTES = 1 * 2**20


@dataclass(frozen=True, slots=True)
class ObjectFiles:
    """Where one segmentation's objects are: ``table`` and ``instances`` are None when absent."""

    dataset: str
    name: str
    folder: Path
    table: Path | None
    instances: Path | None
    scores: dict[str, Any]


def _segmentation_folder(root: Path, location: str) -> Path:
    path = resolve_inside(root, location)
    if path.name in (SEGMENTATION_LABELS, SEGMENTATION_LABELS_ZARR) or not path.is_dir():
        return path.parent
    return path


def _card(root: Path, folder: Path) -> dict[str, Any]:
    """The segmentation's card, or {} when it has none; a damaged card is an error naming it."""
    card = folder / SEGMENTATION_CARD
    try:
        size = card.stat().st_size
    except OSError:
        return {}
    shown = relative_to_root(root, card)
    if size > _CARD_MAX_BYTES:
        raise InputError(f"{shown} is {size} bytes, more than a card holds", where="name")
    try:
        document = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{shown} cannot be read as JSON: {exc}", where="name") from None
    return document if isinstance(document, dict) else {}


def _named_file(root: Path, folder: Path, card: dict, key: str, defaults: tuple[str, ...]):
    """The file the card names under ``key`` (inside the data folder), else the first default
    present in the folder; None when there is none."""
    named = card.get(key)
    base = relative_to_root(root, folder)
    if isinstance(named, str) and named.strip():
        path = resolve_inside(
            root, f"{base}/{named}", source=str(folder / SEGMENTATION_CARD), where=key
        )
        return path if path.exists() else None
    for default in defaults:
        path = resolve_inside(root, f"{base}/{default}")
        if path.exists():
            return path
    return None


def _scores(card: dict) -> dict[str, Any]:
    """``object_scores`` (per class, or one set), any ``object_scores_<variant>`` entries, and
    ``object_scores_note`` (why nothing was scored), as the card holds them."""
    return {
        key: value
        for key, value in card.items()
        if key.startswith("object_scores") and isinstance(value, (dict, str))
    }


def find_object_files(root: Path, catalog, dataset: str, name: str) -> ObjectFiles:
    """The object files of segmentation ``name`` of ``dataset`` (NotFoundError when the
    segmentation is unknown or has no files)."""
    row = catalog.segmentation(dataset, name)
    location = row.get("location")
    if not location:
        raise NotFoundError(f"segmentation {name!r} of {dataset!r} has no files")
    folder = _segmentation_folder(root, location)
    card = _card(root, folder)
    return ObjectFiles(
        dataset=dataset,
        name=name,
        folder=folder,
        table=_named_file(root, folder, card, "objects", (OBJECT_TABLE,)),
        instances=_named_file(root, folder, card, "instances", (INSTANCES_TIFF, INSTANCES_ZARR)),
        scores=_scores(card),
    )


def has_object_table(root: Path, catalog, dataset: str, name: str) -> bool:
    """Whether the segmentation has an object table to list (never raises for a damaged card:
    the object routes say what is wrong with it)."""
    try:
        return find_object_files(root, catalog, dataset, name).table is not None
    except (InputError, NotFoundError):
        return False


def instances_of(root: Path, catalog, dataset: str, name: str) -> Path | None:
    """The segmentation's instance volume, or None when it has none or its card is damaged
    (the voxel readout then shows no object id rather than failing)."""
    try:
        return find_object_files(root, catalog, dataset, name).instances
    except (InputError, NotFoundError):
        return None


def object_scores_of(root: Path, catalog, dataset: str, name: str) -> dict[str, Any]:
    """The card's object scores ({} when none, or when the card cannot be read)."""
    try:
        return find_object_files(root, catalog, dataset, name).scores
    except (InputError, NotFoundError):
        return {}
