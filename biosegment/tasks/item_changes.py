"""Rename an annotation, a segmentation or a model; move one to the trash and bring it back.

The files move, never get deleted: a deleted thing goes whole (folder, card, slices, logs) to
the data folder's trash (:mod:`biosegment.trash`), and a restore moves it back. The catalog
follows at once: the row of the old name is forgotten and a refresh registers what the folder
now holds, keeping the row's origin (so an annotation made in the UI stays the UI's).

Refused, with :class:`~biosegment.errors.StateError` (409 in the API) naming the reason:

- a thing in use: a model that is a project's ``default_model`` in ``setup.json``, or the base
  model or the model of a queued or running job; an annotation a queued or running train job
  learns from; a segmentation a queued or running job is writing;
- a thing ``setup.json`` declares (its entry names it; change the file first), and an
  annotation imported from an old-stack ``annotations.json`` that is still there (the scan
  would import it again);
- a new name already taken, compared without case (``Cells`` and ``cells`` are one folder on
  macOS and Windows), by a catalogued thing, a file or folder, or the output of an unfinished
  job; a restore whose name was taken again meanwhile.

A name that is not a plain folder name is an :class:`~biosegment.errors.InputError` (400).
Renaming a model keeps its provenance: its card gets the new ``name`` and lists the old one in
``renamed_from``, and every other model whose card names it as ``parent`` and every
segmentation whose card names it as ``model`` is updated to the new name. ``setup.json`` needs
no change, since a model it names is in use and is not renamed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from biosegment.catalog import refresh
from biosegment.catalog.setup_edit import setup_for_edit
from biosegment.catalog.store import Catalog
from biosegment.errors import InputError, NotFoundError, SetupError, StateError
from biosegment.folder_names import (
    MODEL_CARD,
    MODEL_SUFFIX,
    MODEL_WEIGHTS,
    MODELS_DIR,
    SEGMENTATION_CARD,
    SEGMENTATIONS_DIR,
)
from biosegment.paths import resolve_inside
from biosegment.tasks.naming import checked_name
from biosegment.tasks.train_actions import ACTIVE_STATES
from biosegment.trash import move_back, move_to_trash, trash_entries, trash_entry
from biosegment.volumes.atomic import AtomicFile

__all__ = [
    "ITEM_KINDS",
    "ItemRef",
    "uses_of",
    "rename_item",
    "delete_item",
    "restore_item",
    "trash_entries",
]

#: Kind of thing -> its catalog table.
ITEM_KINDS = {"annotation": "annotations", "segmentation": "segmentations", "model": "models"}
_ANNOTATION_CARD = "annotation.json"
_CARD_OF_KIND = {"annotation": _ANNOTATION_CARD, "segmentation": SEGMENTATION_CARD}


@dataclass(frozen=True, slots=True)
class ItemRef:
    """One annotation or segmentation (of ``dataset``), or one model."""

    kind: str
    name: str
    dataset: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ITEM_KINDS:
            raise InputError(
                f"unknown kind {self.kind!r}; expected one of {', '.join(ITEM_KINDS)}",
                where="kind",
            )
        if (self.kind == "model") != (self.dataset is None):
            raise InputError(
                "annotations and segmentations are named with their dataset; models without",
                where="dataset",
            )

    @property
    def table(self) -> str:
        return ITEM_KINDS[self.kind]

    @property
    def label(self) -> str:
        where = f"{self.dataset}/" if self.dataset else ""
        return f"{self.kind} {where}{self.name}"

    def row(self, catalog: Catalog) -> dict:
        """The catalog row; :class:`NotFoundError` for a name it does not hold."""
        if self.kind == "model":
            return catalog.model(self.name)
        if self.kind == "segmentation":
            return catalog.segmentation(str(self.dataset), self.name)
        return catalog.annotation(str(self.dataset), self.name)

    def renamed(self, name: str) -> ItemRef:
        return ItemRef(self.kind, name, self.dataset)


# -- what a thing is made of, and what uses it -------------------------------------------------


def _files(catalog: Catalog, root: Path, ref: ItemRef, row: dict) -> list[Path]:
    """The files and folders that make up the thing, all inside ``root``."""
    if ref.kind == "segmentation":
        folder = resolve_inside(root, f"{SEGMENTATIONS_DIR}/{ref.dataset}/{ref.name}")
        candidates = [folder] if folder.is_dir() else [catalog.path_of(row)]
    elif ref.kind == "model":
        weights = catalog.path_of(row)
        if weights.name == MODEL_WEIGHTS and weights.parent.name == ref.name:
            candidates = [weights.parent]
        else:  # the older layout: models/<name>.pytorch with models/<name>.json beside it
            candidates = [weights, weights.with_suffix(".json")]
    else:
        candidates = [catalog.path_of(row)]
    found = [path for path in candidates if os.path.lexists(path)]
    if not found:
        raise StateError(
            f"{ref.label}: {row.get('location')} is not in the data folder", where="name"
        )
    return found


def _setup_projects(catalog: Catalog, root: Path) -> list[dict]:
    try:
        data, _ = setup_for_edit(root)
    except SetupError:
        return catalog.projects(include_missing=False)  # the last valid file's, as applied
    projects = data.get("projects")
    return [p for p in projects if isinstance(p, dict)] if isinstance(projects, list) else []


def _job_uses(job: dict, ref: ItemRef) -> str | None:
    params = job.get("params") or {}
    what = f"{job['state']} {job['kind']} job {job['id']}"
    same_dataset = params.get("dataset") == ref.dataset
    if ref.kind == "model":
        if job["kind"] == "train" and params.get("base_model") == ref.name:
            return f"{what} fine-tunes it"
        if job["kind"] == "segment" and params.get("model") == ref.name:
            return f"{what} segments with it"
        if job["kind"] == "train" and params.get("name") == ref.name:
            return f"{what} is making it"
    elif ref.kind == "annotation":
        if job["kind"] == "train" and same_dataset and params.get("annotation") == ref.name:
            return f"{what} learns from it"
    elif job["kind"] == "segment" and same_dataset and params.get("name") == ref.name:
        return f"{what} is writing it"
    return None


def _active_jobs(catalog: Catalog) -> list[dict]:
    return [job for state in ACTIVE_STATES for job in catalog.jobs_in_state(state)]


def _legacy_source(root: Path, row: dict) -> str | None:
    """The old stack's annotations.json an annotation was imported from, when it lies outside
    the annotation's folder: the folder scan would import it again under the old name."""
    try:
        folder = resolve_inside(root, row["location"])
        card = json.loads((folder / _ANNOTATION_CARD).read_text(encoding="utf-8"))
        source = str(card["imported_from"]["location"])
        source_path = resolve_inside(root, source)
    except (OSError, ValueError, KeyError, TypeError, InputError):
        return None
    if not source_path.is_file() or source_path.is_relative_to(folder):
        return None
    return source


def uses_of(catalog: Catalog, root: Path, ref: ItemRef) -> list[str]:
    """What keeps the thing from being renamed or deleted now, one phrase each."""
    uses = []
    row = ref.row(catalog)
    if row.get("origin") == "setup":
        uses.append(f"setup.json declares it in its {ref.table} list")
    if ref.kind == "annotation" and (source := _legacy_source(root, row)):
        uses.append(
            f"it was imported from {source}, which the folder scan would import again under "
            "its old name (move that file out of the data folder first)"
        )
    if ref.kind == "model":
        uses += [
            f"project {project.get('title')!r} has it as default_model in setup.json"
            for project in _setup_projects(catalog, root)
            if project.get("default_model") == ref.name
        ]
    uses += [use for job in _active_jobs(catalog) if (use := _job_uses(job, ref))]
    return uses


def _refuse_if_used(catalog: Catalog, root: Path, ref: ItemRef, action: str) -> None:
    uses = uses_of(catalog, root, ref)
    if uses:
        raise StateError(
            f"{ref.label} is in use and cannot be {action}: {'; '.join(uses)}", where="name"
        )


# -- names -------------------------------------------------------------------------------------


def _taken_names(catalog: Catalog, root: Path, ref: ItemRef) -> list[str]:
    """Every name the thing's kind holds now in its dataset: catalogued, on disk, being made."""
    if ref.kind == "model":
        names = [row["name"] for row in catalog.models(include_missing=False)]
        folder = root / MODELS_DIR
    else:
        listing = catalog.segmentations if ref.kind == "segmentation" else catalog.annotations
        names = [row["name"] for row in listing(ref.dataset, include_missing=False)]
        folder = root / f"{ref.table}/{ref.dataset}"
    try:
        for entry in folder.iterdir():
            stem = entry.name
            if ref.kind == "model":
                stem = stem.removesuffix(MODEL_SUFFIX).removesuffix(".json")
            names.append(stem)
    except (FileNotFoundError, NotADirectoryError):
        pass
    for job in _active_jobs(catalog):
        params = job.get("params") or {}
        made_here = job["kind"] == "train" if ref.kind == "model" else job["kind"] == "segment"
        if ref.kind == "annotation" or not made_here or not params.get("name"):
            continue
        if ref.kind == "segmentation" and params.get("dataset") != ref.dataset:
            continue
        names.append(params["name"])
    return names


def _clash(names: list[str], wanted: str, *, besides: str | None = None) -> str | None:
    return next(
        (name for name in names if name.casefold() == wanted.casefold() and name != besides),
        None,
    )


def _check_new_name(ref: ItemRef, name: str) -> str:
    if ref.kind != "annotation":
        return checked_name(name, where="name")  # the rule jobs name their outputs by
    if not name or name != Path(name).name or name.startswith(".") or name in ("..", "."):
        raise InputError(f"{name!r} is not a plain folder name", where="name")
    return name


# -- cards -------------------------------------------------------------------------------------


def _rewrite_json(path: Path, change: Callable[[dict], bool]) -> None:
    """Apply ``change`` to the JSON object in ``path`` and write it back when it says so; a
    missing or unreadable file is left alone (the catalog reports it as it is)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(data, dict) or not change(data):
        return
    with AtomicFile(path) as target:
        target.file.write((json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())


def _rename_card(ref: ItemRef, new_name: str, moved: list[Path]) -> None:
    def set_name(data: dict) -> bool:
        if ref.kind == "model":
            earlier = data.get("renamed_from")
            data["renamed_from"] = [*(earlier if isinstance(earlier, list) else []), ref.name]
            data["name"] = new_name
            return True
        if "name" in data:
            data["name"] = new_name
            return True
        return False

    card_name = _CARD_OF_KIND.get(ref.kind, MODEL_CARD)
    for path in moved:
        card = path / card_name if path.is_dir() else path.with_suffix(".json")
        if card.is_file():
            _rewrite_json(card, set_name)


def _follow_model_rename(catalog: Catalog, old: str, new: str) -> None:
    """Point the cards that name model ``old`` (as parent, or as maker) at ``new``."""

    def rename_field(key: str) -> Callable[[dict], bool]:
        def change(data: dict) -> bool:
            if data.get(key) != old:
                return False
            data[key] = new
            return True

        return change

    for row in catalog.models():
        if row.get("parent") == old and row.get("location"):
            weights = catalog.path_of(row)
            card = weights.parent / MODEL_CARD if weights.name == MODEL_WEIGHTS else None
            _rewrite_json(card or weights.with_suffix(".json"), rename_field("parent"))
    for row in catalog.segmentations():
        if row.get("model") == old:
            folder = catalog.root / f"{SEGMENTATIONS_DIR}/{row['dataset']}/{row['name']}"
            _rewrite_json(folder / SEGMENTATION_CARD, rename_field("model"))


# -- the catalog afterwards ----------------------------------------------------------------


def _register(catalog: Catalog, root: Path, ref: ItemRef, origin: str | None) -> dict | None:
    """Refresh the catalog and give the thing's row back its origin; its row (or None)."""
    refresh(catalog, root)
    try:
        row = ref.row(catalog)
    except NotFoundError:
        return None
    if origin and row.get("origin") != origin:
        key = (ref.name,) if ref.kind == "model" else (ref.dataset, ref.name)
        catalog.set_origin(ref.table, [key], origin)
        row = ref.row(catalog)
    return row


def _forget(catalog: Catalog, ref: ItemRef) -> None:
    catalog.forget(ref.table, ref.name, dataset=ref.dataset)


# -- the three actions -------------------------------------------------------------------------


def rename_item(catalog: Catalog, root: Path, ref: ItemRef, new_name: str) -> dict:
    """Rename the thing to ``new_name``; return its new catalog row."""
    root = Path(root)
    row = ref.row(catalog)
    new_name = _check_new_name(ref, new_name)
    if new_name == ref.name:
        return row
    clash = _clash(_taken_names(catalog, root, ref), new_name, besides=ref.name)
    if clash is not None:
        where = f" of dataset {ref.dataset!r}" if ref.dataset else ""
        article = "an" if ref.kind == "annotation" else "a"
        raise StateError(
            f"the name {new_name!r} is taken: there is already {article} {ref.kind}{where} named "
            f"{clash!r} (names are compared without case); choose another name",
            where="name",
        )
    _refuse_if_used(catalog, root, ref, "renamed")
    files = _files(catalog, root, ref, row)
    targets = [
        path.with_name(new_name + ("" if path.is_dir() else "".join(path.suffixes[-1:])))
        for path in files
    ]
    for target in targets:
        # a case-only rename names the same entry on a case-insensitive disk
        if os.path.lexists(target) and target.name.casefold() != ref.name.casefold():
            raise StateError(f"{target.relative_to(root)} already exists", where="name")
    moved = []
    for path, target in zip(files, targets, strict=True):
        os.rename(path, target)
        moved.append(target)
    _rename_card(ref, new_name, moved)
    if ref.kind == "model":
        _follow_model_rename(catalog, ref.name, new_name)
    _forget(catalog, ref)
    new_row = _register(catalog, root, ref.renamed(new_name), row.get("origin"))
    if new_row is None:
        raise StateError(f"{ref.renamed(new_name).label} was renamed but not found again")
    return new_row


def delete_item(catalog: Catalog, root: Path, ref: ItemRef) -> dict:
    """Move the thing to the trash; return the trash entry (its ``id`` restores it)."""
    root = Path(root)
    row = ref.row(catalog)
    _refuse_if_used(catalog, root, ref, "deleted")
    files = _files(catalog, root, ref, row)
    item = {"kind": ref.kind, "name": ref.name, "origin": row.get("origin")}
    if ref.dataset is not None:
        item["dataset"] = ref.dataset
    folder = move_to_trash(root, files, why=f"deleted {ref.kind}", item=item)
    _forget(catalog, ref)
    refresh(catalog, root)
    return trash_entry(root, folder.name)


def restore_item(catalog: Catalog, root: Path, entry_id: str) -> dict:
    """Move trash entry ``entry_id`` back; return ``{"entry": ..., "item": <row or None>}``."""
    root = Path(root)
    entry = trash_entry(root, entry_id)
    item = entry.get("item") or {}
    ref = None
    if item.get("kind") in ITEM_KINDS and item.get("name"):
        ref = ItemRef(str(item["kind"]), str(item["name"]), item.get("dataset"))
        clash = _clash(_taken_names(catalog, root, ref), ref.name)
        if clash is not None:
            raise StateError(
                f"{ref.label} cannot be restored: the name is taken again by {clash!r}; "
                "rename or delete that one first",
                where="entry",
            )
    move_back(root, entry_id)
    if ref is None:
        refresh(catalog, root)
        return {"entry": entry, "item": None}
    return {"entry": entry, "item": _register(catalog, root, ref, item.get("origin"))}
