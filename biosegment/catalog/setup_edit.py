"""Change ``setup.json`` from the UI: a project's classes and default model, a dataset's voxel
size and project, written safely (what a change does to the document:
:mod:`biosegment.catalog.setup_change`).

The caller reads the file with :func:`setup_for_edit`, which gives the parsed document and its
*version* (a hash of the bytes). :func:`edit_setup` applies a change only if the file still has
that version, so an edit made meanwhile in a text editor (or by another person in the UI) is
never overwritten: it raises :class:`SetupChangedError` instead. The result is checked with the
same rules as the daemon's reading (:func:`check_setup_data`) before anything is written; the
write is atomic (a temporary file in the same folder, flushed, then renamed over the old one)
and keeps what it can of the file: every other key and its order, the indentation, the final
newline. Comments and spacing inside lines cannot survive, JSON has no place for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from biosegment.catalog.setup_change import apply_change
from biosegment.catalog.setup_file import check_setup_data
from biosegment.errors import InputError, SetupError
from biosegment.folder_names import SETUP_FILE

__all__ = ["SetupChangedError", "setup_for_edit", "edit_setup", "ABSENT_VERSION"]

#: The version of a data folder without ``setup.json``.
ABSENT_VERSION = "absent"


class SetupChangedError(InputError):
    """setup.json changed on disk after it was read for editing."""


def _version(data: bytes | None) -> str:
    return ABSENT_VERSION if data is None else hashlib.sha256(data).hexdigest()[:16]


def _read(root: Path) -> bytes | None:
    try:
        return (root / SETUP_FILE).read_bytes()
    except FileNotFoundError:
        return None


def setup_for_edit(root: Path) -> tuple[dict[str, Any], str]:
    """The parsed ``setup.json`` (``{}`` when there is none) and its version."""
    raw = _read(Path(root))
    if raw is None:
        return {}, ABSENT_VERSION
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SetupError(
            f"cannot be edited until it is valid JSON again: {exc}",
            source=Path(root) / SETUP_FILE,
        ) from None
    if not isinstance(data, dict):
        raise SetupError("the top level must be an object", source=Path(root) / SETUP_FILE)
    return data, _version(raw)


def _indent_of(text: str) -> int | str | None:
    """The indentation the file uses (None: all on one line)."""
    match = re.search(r"\n([ \t]+)\S", text)
    if match is None:
        return None
    unit = match.group(1)
    return unit if "\t" in unit else len(unit)


def edit_setup(root: Path, *, version: str, **change: Any) -> str:
    """Apply ``change`` (see :func:`apply_change`) if the file still has ``version``.

    Returns the new version (the same one when the change changes nothing, and the file is
    left as it is). Raises :class:`SetupChangedError` when the file changed meanwhile,
    :class:`SetupError` (naming the key) when the result would not be a valid setup.json, and
    :class:`InputError` (naming the field) when it refers to something that does not exist.
    """
    root = Path(root)
    path = root / SETUP_FILE
    raw = _read(root)
    if _version(raw) != version:
        raise SetupChangedError(
            "changed on disk since it was opened for editing; reload to see "
            "the new content, then make the change again",
            source=path,
        )
    data, _ = setup_for_edit(root)
    changed = apply_change(data, **change)
    if changed == data:
        return version  # nothing to change: the file is not rewritten
    _, problems = check_setup_data(root, changed)
    if problems:
        raise problems[0]
    text = "" if raw is None else raw.decode("utf-8")
    indent = _indent_of(text) if raw is not None else 2
    body = json.dumps(changed, indent=indent, ensure_ascii=False)
    if raw is None or text.endswith("\n"):
        body += "\n"
    encoded = body.encode("utf-8")
    descriptor, temporary = tempfile.mkstemp(prefix=".setup.", suffix=".json.tmp", dir=root)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        # last look: someone may have saved while this was being written
        if _version(_read(root)) != version:
            raise SetupChangedError(
                "changed on disk while the change was being written; "
                "reload and make the change again",
                source=path,
            )
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return _version(encoded)
