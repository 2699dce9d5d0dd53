"""Keep every location inside the data folder.

All locations stored in ``setup.json``, the catalog or a request are relative to the data root.
``resolve_inside`` is the single gate through which such a location becomes a filesystem path:
it rejects absolute paths, ``..`` components and symlinks whose target leaves the root.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from biosegment.errors import PathEscapeError

__all__ = ["resolve_inside", "relative_to_root", "is_temporary_name", "ensure_inside"]


def resolve_inside(
    root: Path,
    location: str | os.PathLike,
    *,
    source: object | None = None,
    where: str | None = None,
) -> Path:
    """Return ``root / location`` resolved, or raise :class:`PathEscapeError`.

    ``location`` must be relative, may use ``/`` or ``\\`` separators, must not contain ``..``,
    and must not pass through a symlink that points outside ``root``. ``source`` and ``where``
    name the file and key the location came from, for the error message.
    """
    text = os.fspath(location)
    if not text or text.strip() == "":
        raise PathEscapeError("empty location", source=source, where=where)
    if "\x00" in text:
        raise PathEscapeError("location contains a NUL byte", source=source, where=where)
    posix, windows = PurePosixPath(text), PureWindowsPath(text)
    if (
        posix.is_absolute()
        or windows.is_absolute()
        or windows.drive
        or text.startswith(("/", "\\"))
    ):
        raise PathEscapeError(
            f"absolute path {text!r} is not allowed; use a path relative to the data folder",
            source=source,
            where=where,
        )
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PathEscapeError(f"location {text!r} contains '..'", source=source, where=where)
    root_resolved = Path(root).resolve()
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise PathEscapeError(
            f"location {text!r} leaves the data folder through a symlink",
            source=source,
            where=where,
        )
    return candidate


def relative_to_root(root: Path, path: Path) -> str:
    """Return ``path`` as a POSIX-style location relative to ``root`` (raises if outside)."""
    root_resolved = Path(root).resolve()
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(root_resolved).as_posix()
    except ValueError:
        raise PathEscapeError(f"{path} is outside the data folder {root}") from None


def ensure_inside(root: Path, path: Path) -> Path:
    """Return ``path`` when it (followed through any symlink) stays inside ``root``.

    Files found inside an entry (a slice of a folder, an annotation PNG, a ``model.json``) may
    themselves be symlinks; reading one that points outside would serve files the data folder
    does not hold. The error names the link by its place in the data folder.
    """
    root_resolved = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved == root_resolved or root_resolved in resolved.parents:
        return path
    try:
        place = Path(os.path.abspath(path)).relative_to(root_resolved).as_posix()
    except ValueError:
        place = Path(path).name
    raise PathEscapeError(
        f"{place} is a link to a file outside the data folder; copy the file in instead"
    )


def is_temporary_name(name: str) -> bool:
    """True for names that copy tools and our own writers use while a file is incomplete."""
    lowered = name.lower()
    return (
        name.startswith(".")
        or name.startswith("~")
        or lowered.endswith((".part", ".tmp", ".partial", ".crdownload", ".swp", "~"))
    )
