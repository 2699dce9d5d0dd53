"""Create sparse annotations and read and write their slices (SPEC 4).

An annotation is a folder ``annotations/<dataset>/<name>/`` with one PNG of class ids per painted
slice (255 where nothing was painted) and ``annotation.json`` (classes, author, times). A slice
saved with nothing painted is removed rather than stored, so the folder lists exactly the slices
that carry labels. After each write the catalog row is refreshed from the folder with the same
probe the daemon uses, so the UI and a rescan always agree.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from biosegment.catalog.probe import annotation_facts
from biosegment.catalog.rows import now_iso
from biosegment.errors import NotFoundError
from biosegment.paths import ensure_inside, resolve_inside
from biosegment.volumes import annotation_slice_name, read_png_slice, write_png_slice
from biosegment.volumes.atomic import AtomicFile
from biosegment.volumes.png import read_png_header
from biosegment.webui.errors import ApiError
from biosegment.webui.layers import UNPAINTED

__all__ = [
    "ANNOTATION_META",
    "annotation_location",
    "create_annotation",
    "load_slice",
    "save_slice",
    "check_labels",
]

ANNOTATION_META = "annotation.json"


def annotation_location(dataset: str, name: str) -> str:
    return f"annotations/{dataset}/{name}"


def _write_json_atomically(path: Path, document: dict) -> None:
    # a unique temporary name per writer: concurrent saves never rename each other's file
    with AtomicFile(path) as target:
        target.file.write(
            (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        )


_locks_guard = threading.Lock()
_folder_locks: dict[str, threading.Lock] = {}


def _folder_lock(folder: Path) -> threading.Lock:
    """One lock per annotation folder: ``annotation.json`` is read, changed and written back,
    and two saves doing that at once would each lose the other's change."""
    with _locks_guard:
        return _folder_locks.setdefault(str(folder), threading.Lock())


def _refresh_row(
    catalog, root: Path, dataset: str, name: str, location: str, previous: dict | None
) -> dict:
    facts = annotation_facts(root, location, previous=previous)
    return catalog.upsert_annotation(
        dataset=dataset, name=name, location=location, origin="ui", **facts
    )


def create_annotation(
    catalog, root: Path, dataset: dict, *, name: str, classes: list[dict], author: str = ""
) -> dict:
    """Make the folder and ``annotation.json`` of a new annotation and register it.

    A name is refused (409) when the dataset has an annotation of that name in any case, in the
    catalog or as a folder: ``Cells`` and ``cells`` are one folder on macOS and Windows, and a
    data folder may move there.
    """
    try:
        catalog.annotation(dataset["name"], name)
    except NotFoundError:
        pass
    else:
        raise ApiError(
            409, f"dataset {dataset['name']!r} already has an annotation {name!r}", field="name"
        )
    location = annotation_location(dataset["name"], name)
    folder = resolve_inside(root, location, where="name")
    if folder.exists():
        raise ApiError(409, f"{location} already exists in the data folder", field="name")
    _refuse_case_clash(catalog, folder.parent, dataset["name"], name)
    folder.mkdir(parents=True)
    now = now_iso()
    _write_json_atomically(
        folder / ANNOTATION_META,
        {
            "dataset": dataset["name"],
            "name": name,
            "classes": classes,
            "author": author,
            "created": now,
            "updated": now,
        },
    )
    return _refresh_row(catalog, root, dataset["name"], name, location, None)


def _refuse_case_clash(catalog, parent: Path, dataset: str, name: str) -> None:
    taken = [row["name"] for row in catalog.annotations(dataset)]
    try:
        taken += [entry.name for entry in parent.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        pass  # the dataset has no annotation folder yet
    clash = next((other for other in taken if other.casefold() == name.casefold()), None)
    if clash is not None:
        raise ApiError(
            409,
            f"dataset {dataset!r} already has an annotation {clash!r}; names that differ "
            f"only in case ({name!r}) are one folder on macOS and Windows: choose another name",
            field="name",
        )


def _folder(root: Path, row: dict) -> Path:
    location = row.get("location") or annotation_location(row["dataset"], row["name"])
    return resolve_inside(root, location)


def load_slice(root: Path, row: dict, z: int, size: tuple[int, int]) -> np.ndarray:
    """Slice ``z`` of the annotation, all 255 when nothing was painted on it."""
    file = _folder(root, row) / annotation_slice_name(z)
    if not file.is_file():
        return np.full(size, UNPAINTED, dtype=np.uint8)
    ensure_inside(root, file)  # a slice linked to a file outside is never served
    header = read_png_header(file)  # the size first: decoding follows what the file claims
    if (header.height, header.width) != tuple(size):
        raise ApiError(
            409,
            f"{file.name} is {header.width}x{header.height}, the dataset "
            f"slices {size[1]}x{size[0]}",
            field="z",
        )
    labels = read_png_slice(file)
    if labels.shape != tuple(size):
        raise ApiError(
            409,
            f"{file.name} is {labels.shape[1]}x{labels.shape[0]}, the dataset "
            f"slices {size[1]}x{size[0]}",
            field="z",
        )
    return labels


def check_labels(labels: np.ndarray, classes: list[dict] | None) -> None:
    """400 when a slice holds a value that is neither a class id of the annotation nor 255."""
    allowed = {UNPAINTED} | {int(c["id"]) for c in classes or [] if isinstance(c, dict)}
    if not classes:
        return
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    unknown = sorted(set(present.tolist()) - allowed)
    if unknown:
        raise ApiError(
            400,
            f"slice holds class ids {unknown} that the annotation does not "
            f"define (allowed: {sorted(allowed)})",
            field="body",
        )


def save_slice(catalog, root: Path, row: dict, z: int, labels: np.ndarray) -> dict:
    """Store slice ``z`` (or remove it when nothing is painted) and refresh the catalog row."""
    folder = _folder(root, row)
    with _folder_lock(folder):
        return _save_slice_locked(catalog, root, row, folder, z, labels)


def _save_slice_locked(
    catalog, root: Path, row: dict, folder: Path, z: int, labels: np.ndarray
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / annotation_slice_name(z)
    if np.all(labels == UNPAINTED):
        file.unlink(missing_ok=True)
    else:
        write_png_slice(file, labels)
    meta_path = folder / ANNOTATION_META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        meta = {
            "dataset": row["dataset"],
            "name": row["name"],
            "classes": row.get("classes"),
            "created": now_iso(),
        }
    meta["updated"] = now_iso()
    _write_json_atomically(meta_path, meta)
    return _refresh_row(
        catalog,
        root,
        row["dataset"],
        row["name"],
        row.get("location") or annotation_location(row["dataset"], row["name"]),
        row,
    )
