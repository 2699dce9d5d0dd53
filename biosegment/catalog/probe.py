"""Facts about one thing in the data folder, read from headers and side files only.

The scan and the setup reconciler ask here what a dataset, model, segmentation or annotation on
disk looks like, and get back the column values of its catalog row. Nothing reads pixels: volumes
are probed through :func:`biosegment.volumes.probe_volume` (headers), models through their
``model.json`` or, for bare legacy files, the checkpoint's keys and shapes. Each probe first
compares a size+mtime fingerprint with the row already stored and returns that row's facts
unchanged when the files have not changed, which keeps a refresh of a large folder cheap. A file
that cannot be read gives ``state='error'`` with a message naming it; nothing here raises for bad
data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from biosegment.errors import InputError
from biosegment.paths import ensure_inside, is_temporary_name, relative_to_root, resolve_inside
from biosegment.volumes import IMAGE_SUFFIXES, find_volume_in_folder, probe_volume, storage_path
from biosegment.volumes.limits import DEFAULT_LIMITS, volume_limits

__all__ = [
    "fingerprint",
    "image_files",
    "volume_location",
    "describe_error",
    "dataset_facts",
    "model_facts",
    "segmentation_facts",
    "annotation_facts",
    "ANNOTATION_SLICE",
]

#: Slice files of a sparse annotation: ``z00012.png`` holds slice 12.
ANNOTATION_SLICE = re.compile(r"^z(\d+)\.png$", re.IGNORECASE)

_DATASET_FACTS = ("file_type", "shape", "dtype", "voxel_size")


def image_files(folder: Path) -> list[os.DirEntry]:
    """Finished image files directly inside ``folder`` (none if it is not a folder)."""

    try:
        with os.scandir(folder) as entries:
            return [
                e
                for e in entries
                if not is_temporary_name(e.name)
                and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
                and e.is_file()
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []


def fingerprint(path: Path) -> str | None:
    """Size and mtime of a file, or count, total size and newest mtime of a folder's files.

    None when the path does not exist. Folders count every finished file directly inside them,
    so a slice added, removed or rewritten changes the fingerprint.
    """
    try:
        stat = os.stat(path)
    except OSError:
        # A dataset inside an HDF5 file (``EM/a.h5/volumes/raw``) changes with its file.

        container = storage_path(Path(path))
        return None if container == Path(path) else fingerprint(container)
    if not os.path.isdir(path):
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    count, total, newest = 0, 0, stat.st_mtime_ns
    with os.scandir(path) as entries:
        for entry in entries:
            if is_temporary_name(entry.name) or not entry.is_file():
                continue
            info = entry.stat()
            count += 1
            total += info.st_size
            newest = max(newest, info.st_mtime_ns)
    return f"{count}:{total}:{newest}"


def volume_location(folder: Path) -> Path | None:
    """The volume a dataset folder holds: its single TIFF file, the folder of slices, or (with
    no image files) the folder itself when it is a Zarr/N5 store, or the one container (HDF5,
    MRC, Zarr, N5) inside it.

    None when the folder holds none of these.
    """
    files = image_files(folder)
    if not files:
        return find_volume_in_folder(Path(folder))
    if len(files) == 1 and os.path.splitext(files[0].name)[1].lower() in (".tif", ".tiff"):
        return Path(files[0].path)
    return Path(folder)


def describe_error(root: Path, exc: BaseException) -> str:
    """One line naming the file (relative to the root) and what is wrong with it."""
    if isinstance(exc, InputError):
        parts = []
        if exc.source:
            parts.append(_relative(root, exc.source))
        if exc.where:
            parts.append(exc.where)
        parts.append(exc.reason)
        return ": ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def dataset_facts(
    root: Path,
    location: str,
    *,
    file_type: str | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Column values for a dataset stored at ``location``: type, shape, dtype, state..."""

    path = resolve_inside(root, location)
    stamp = fingerprint(path)
    if stamp is None:
        return {"state": "missing", "error": f"{location}: not found", "fingerprint": None}
    if file_type is not None:
        # A different declared type is a different reading of the same files: probe again.
        stamp = f"{stamp}|{file_type}"
    limits = volume_limits()
    if limits != DEFAULT_LIMITS:
        # other limits may accept (or refuse) the same files: probe again when they change
        stamp = (
            f"{stamp}|{limits.max_voxels}:{limits.max_slice_pixels}:{limits.max_chunks}"
            f":{limits.max_decode_mb}"
        )
    if _unchanged(previous, location, stamp):
        return {
            column: previous.get(column)
            for column in (*_DATASET_FACTS, "state", "error", "fingerprint")
        }
    try:
        info = probe_volume(path, file_type=file_type)
    except Exception as exc:  # any reader failure is this dataset's error, never the scan's
        return {
            "file_type": file_type,
            "shape": None,
            "dtype": None,
            "voxel_size": None,
            "state": "error",
            "error": describe_error(root, exc),
            "fingerprint": stamp,
        }
    for file in info.files:  # a slice linked to a file outside is a problem, not data
        ensure_inside(root, file)
    return {
        "file_type": info.file_type,
        "shape": list(info.shape),
        "dtype": str(info.dtype),
        "voxel_size": None if info.voxel_size is None else list(info.voxel_size),
        "state": "ok",
        "error": None,
        "fingerprint": stamp,
    }


def segmentation_facts(
    root: Path, location: str, *, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """State of a segmentation's label volume at ``location`` (headers checked)."""

    path = resolve_inside(root, location)
    stamp = fingerprint(path)
    if stamp is None:
        return {"state": "missing", "error": f"{location}: not found", "fingerprint": None}
    if _unchanged(previous, location, stamp):
        return {"state": previous["state"], "error": previous["error"], "fingerprint": stamp}
    try:
        info = probe_volume(path)
    except Exception as exc:
        return {"state": "error", "error": describe_error(root, exc), "fingerprint": stamp}
    for file in info.files:
        ensure_inside(root, file)
    return {"state": "ok", "error": None, "fingerprint": stamp}


def model_facts(
    root: Path, location: str, *, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Architecture, classes, parent and metrics of the checkpoint at ``location``.

    The checkpoint is loaded (weights only, never code) so a damaged file is found now rather
    than when a job needs it; a ``model.json`` beside it adds classes and provenance.
    """
    path = ensure_inside(root, resolve_inside(root, location))
    card_path = path.with_suffix(".json")
    if os.path.lexists(card_path):
        ensure_inside(root, card_path)
    stamp = fingerprint(path)
    if stamp is None:
        return {"state": "missing", "error": f"{location}: not found", "fingerprint": None}
    card_print = fingerprint(card_path)
    if card_print is not None:
        stamp = f"{stamp}+{card_print}"
    if _unchanged(previous, location, stamp):
        return {
            column: previous.get(column)
            for column in (
                "architecture",
                "classes",
                "parent",
                "metrics",
                "state",
                "error",
                "fingerprint",
            )
        }
    try:
        # torch is slow to import; only a scan that meets a new or changed model pays for it.
        from biosegment.engine.checkpoint import load_model

        _, card = load_model(path)
    except Exception as exc:
        return {
            "architecture": None,
            "classes": None,
            "parent": None,
            "metrics": None,
            "state": "error",
            "error": describe_error(root, exc),
            "fingerprint": stamp,
        }
    return {
        "architecture": dict(card.architecture),
        "classes": list(card.classes),
        "parent": card.parent,
        "metrics": list(card.metrics) or None,
        "state": "ok",
        "error": None,
        "fingerprint": stamp,
    }


def annotation_facts(
    root: Path, location: str, *, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Annotated slices and classes of the sparse annotation folder at ``location``."""
    folder = resolve_inside(root, location)
    stamp = fingerprint(folder) if folder.is_dir() else None
    if stamp is None:
        return {"state": "missing", "error": f"{location}: not found", "fingerprint": None}
    if _unchanged(previous, location, stamp):
        return {
            column: previous.get(column)
            for column in ("classes", "slices", "state", "error", "fingerprint")
        }
    slices = sorted(
        int(m.group(1))
        for name in os.listdir(folder)
        if (m := ANNOTATION_SLICE.match(name)) and ensure_inside(root, folder / name)
    )
    facts: dict[str, Any] = {
        "slices": slices,
        "classes": None,
        "state": "ok",
        "error": None,
        "fingerprint": stamp,
    }
    meta_path = folder / "annotation.json"
    if os.path.lexists(meta_path):
        ensure_inside(root, meta_path)
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("expected a JSON object")
            facts["classes"] = meta.get("classes")
        except (OSError, ValueError, RecursionError) as exc:
            facts.update(state="error", error=f"{_relative(root, meta_path)}: cannot read: {exc}")
    return facts


def _unchanged(
    previous: Mapping[str, Any] | None, location: str, stamp: str
) -> TypeGuard[Mapping[str, Any]]:
    """True when ``previous`` is the row of these very files (same location and fingerprint)."""
    return (
        previous is not None
        and previous.get("location") == location
        and previous.get("fingerprint") == stamp
        and previous.get("state") in ("ok", "error")
    )


def _relative(root: Path, source: object) -> str:
    try:
        return relative_to_root(root, Path(str(source)))
    except InputError:
        return str(source)
