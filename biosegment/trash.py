"""Move a person's files aside into the data folder's trash instead of deleting them.

Nothing BioSegment replaces on a person's request is deleted: it goes to
``<data folder>/.biosegment-trash/<UTC time> <why>/``, at the same place relative to the data
folder as it had (``models/tiny/`` becomes ``.biosegment-trash/20261207T204400Z replaced by
import/models/tiny/``), with a ``trashed.json`` saying what was moved, when and why. Putting a
thing back (:func:`move_back`) moves every path to where it was, refusing when anything is in
one of those places now, and removes the emptied trash folder; emptying the trash is deleting
those folders. :func:`trash_entries` lists what the trash holds, newest first. The catalog's scan
walks the fixed layout only, so trashed files never show up as datasets or models.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from biosegment.errors import InputError, NotFoundError, StateError
from biosegment.folder_names import TRASH_DIR

__all__ = ["move_to_trash", "trash_entries", "trash_entry", "move_back", "TRASH_NOTE"]

#: The note in each trash folder: what was moved from where, when and why.
TRASH_NOTE = "trashed.json"


def _new_folder(root: Path, why: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in why).strip()
    base = Path(root) / TRASH_DIR
    base.mkdir(exist_ok=True)
    for attempt in range(1000):
        folder = base / (f"{stamp} {label}" + (f" {attempt + 1}" if attempt else ""))
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise InputError("no free trash folder name", source=base)


def move_to_trash(
    root: Path, paths: Iterable[Path], *, why: str, item: Mapping[str, object] | None = None
) -> Path:
    """Move ``paths`` (files or folders inside the data folder ``root``) into a new trash
    folder, each at its place relative to ``root``; return that folder.

    :param why: a few words saying what replaced them, kept in the folder's name and note.
    :param item: what the paths were to BioSegment (kind, dataset, name), kept in the note so
        a listing can name it and a restore can register it again.
    :raises InputError: naming a path that is not inside ``root``.
    """
    root = Path(root)
    places = []
    for path in paths:
        try:
            places.append(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)))
        except ValueError:
            raise InputError("is not inside the data folder", source=path) from None
    folder = _new_folder(root, why)
    moved = []
    for place in places:
        target = folder / place
        target.parent.mkdir(parents=True, exist_ok=True)
        # A rename within the data folder's file system; shutil.move copies when a folder of
        # it is mounted from elsewhere.
        shutil.move(root / place, target)
        moved.append(place.as_posix())
    note: dict[str, object] = {"moved": moved, "when": datetime.now(UTC).isoformat(), "why": why}
    if item:
        note["item"] = dict(item)
    (folder / TRASH_NOTE).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return folder


def _read_note(folder: Path) -> dict | None:
    try:
        note = json.loads((folder / TRASH_NOTE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not a folder this module made, or one being made right now
    if not isinstance(note, dict) or not isinstance(note.get("moved"), list):
        return None
    return {
        "id": folder.name,
        "location": f"{TRASH_DIR}/{folder.name}",
        "moved": [str(place) for place in note["moved"]],
        "when": note.get("when"),
        "why": note.get("why"),
        "item": note.get("item") if isinstance(note.get("item"), dict) else None,
    }


def trash_entries(root: Path) -> list[dict]:
    """What the trash of data folder ``root`` holds, newest first: per folder its ``id`` (the
    folder's name), ``moved`` (places relative to ``root``), ``when``, ``why`` and ``item``."""
    base = Path(root) / TRASH_DIR
    try:
        folders = [entry for entry in base.iterdir() if entry.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries = [note for folder in folders if (note := _read_note(folder)) is not None]
    return sorted(entries, key=lambda e: (str(e["when"] or ""), e["id"]), reverse=True)


def trash_entry(root: Path, entry_id: str) -> dict:
    """The trash folder ``entry_id`` (a name :func:`trash_entries` gave).

    :raises NotFoundError: naming the id when the trash holds no such folder.
    """
    base = Path(root) / TRASH_DIR
    plain = entry_id and "\x00" not in entry_id and entry_id == Path(entry_id).name
    if not plain or entry_id.startswith("."):
        raise NotFoundError(f"the trash has no entry {entry_id!r}")
    try:
        note = _read_note(base / entry_id) if (base / entry_id).is_dir() else None
    except (OSError, ValueError):
        note = None  # a name this file system cannot hold
    if note is None:
        raise NotFoundError(f"the trash has no entry {entry_id!r} (see {TRASH_DIR}/)")
    return note


def move_back(root: Path, entry_id: str) -> dict:
    """Move everything trash folder ``entry_id`` holds back to its place in ``root``; return
    the entry. The emptied trash folder is removed.

    :raises StateError: naming the place when something is there again (nothing is moved).
    """
    root = Path(root)
    entry = trash_entry(root, entry_id)
    folder = root / TRASH_DIR / entry_id
    for place in entry["moved"]:
        if os.path.lexists(root / place):
            raise StateError(
                f"{place} exists again in the data folder; rename or delete it first, then restore",
                where="entry",
            )
        if not os.path.lexists(folder / place):
            raise StateError(
                f"{entry['location']}/{place} is no longer in the trash", where="entry"
            )
    for place in entry["moved"]:
        (root / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(folder / place, root / place)
    (folder / TRASH_NOTE).unlink(missing_ok=True)
    # only the folders this module made are left: remove them bottom up while empty
    for dirpath, _dirs, _files in sorted(os.walk(folder), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass  # something else was put there: it stays
    return entry
