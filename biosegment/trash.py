"""Move a person's files aside into the data folder's trash instead of deleting them.

Nothing BioSegment replaces on a person's request is deleted: it goes to
``<data folder>/.biosegment-trash/<UTC time> <why>/``, at the same place relative to the data
folder as it had (``models/tiny/`` becomes ``.biosegment-trash/20261207T204400Z replaced by
import/models/tiny/``), with a ``trashed.json`` saying what was moved, when and why. Putting a
thing back is moving it back; emptying the trash is deleting those folders. The catalog's scan
walks the fixed layout only, so trashed files never show up as datasets or models.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from biosegment.errors import InputError
from biosegment.folder_names import TRASH_DIR

__all__ = ["move_to_trash", "TRASH_NOTE"]

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


def move_to_trash(root: Path, paths: Iterable[Path], *, why: str) -> Path:
    """Move ``paths`` (files or folders inside the data folder ``root``) into a new trash
    folder, each at its place relative to ``root``; return that folder.

    :param why: a few words saying what replaced them, kept in the folder's name and note.
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
    note = {"moved": moved, "when": datetime.now(UTC).isoformat(), "why": why}
    (folder / TRASH_NOTE).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return folder
