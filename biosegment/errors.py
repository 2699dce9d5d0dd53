"""Exceptions shared by every part of BioSegment.

Each error that comes from bad input names where the problem is (a file, a key in a JSON
document, a request field) so the UI and the CLI can tell a person what to fix. Nothing here
does I/O.
"""

from __future__ import annotations

__all__ = [
    "BioSegmentError",
    "InputError",
    "PathEscapeError",
    "VolumeError",
    "SetupError",
    "StateError",
    "NotFoundError",
    "CancelledError",
]


class BioSegmentError(Exception):
    """Base class of every error BioSegment raises on purpose."""


class InputError(BioSegmentError):
    """Bad input from a person or a file.

    ``source`` is the file (or request) the input came from, ``where`` the key, field, line or
    column inside it, ``reason`` what is wrong. ``str()`` joins them into one readable line.
    """

    def __init__(self, reason: str, *, source: object | None = None, where: str | None = None):
        self.reason = reason
        self.source = None if source is None else str(source)
        self.where = where
        super().__init__(self.describe())

    def describe(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.where:
            parts.append(self.where)
        prefix = ": ".join(parts)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def as_dict(self) -> dict:
        return {"source": self.source, "where": self.where, "reason": self.reason}


class PathEscapeError(InputError):
    """A location resolves outside the data folder (``..``, absolute path, or symlink)."""


class VolumeError(InputError):
    """An image stack cannot be read: missing, zero-byte, truncated, corrupt, or inconsistent."""


class SetupError(InputError):
    """``setup.json`` is invalid: bad JSON, unknown ``file_type``, bad location, ..."""


class StateError(InputError):
    """A request that does not fit the state of what it names: a finished job asked to stop, a
    segment job asked for a live preview. The web UI answers it with 409 Conflict."""


class NotFoundError(BioSegmentError):
    """A dataset, model, job or other catalog entry does not exist."""


class CancelledError(BioSegmentError):
    """Raised inside long work when its cancel callback asks it to stop."""
