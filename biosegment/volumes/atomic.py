"""Write a file under a temporary name beside its destination and rename it into place.

Readers (the data-folder watcher, the viewer, Fiji on a network share) must never see half a
file. So every output is written to a hidden ``.<name>.<unique>.part`` file in the destination
folder (the same filesystem, so the final rename is atomic), flushed to disk, and moved over the
destination with ``os.replace`` only when complete. Aborting removes the temporary file and
leaves whatever was at the destination untouched. Unique temporary names let two writers race
without corrupting each other: the last complete file wins.
"""

from __future__ import annotations

import os
import secrets
import weakref
from pathlib import Path
from typing import BinaryIO

__all__ = ["AtomicFile", "temporary_name_for"]


def temporary_name_for(path: Path) -> Path:
    """A fresh hidden ``.part`` name beside ``path`` (ignored by the data-folder watcher)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


class AtomicFile:
    """An open binary file at a temporary name that becomes ``path`` on :meth:`commit`.

    Use as a context manager: leaving the block normally commits, an exception aborts.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp_path = temporary_name_for(self.path)
        self._file: BinaryIO | None = open(self.temp_path, "xb")  # noqa: SIM115 - closed below
        self.done = False
        # A writer dropped without commit or abort (a crashed job) must not leave its
        # temporary file behind: discard it when the object is collected or at exit.
        self._discard = weakref.finalize(self, _discard_temporary, self._file, self.temp_path)

    @property
    def file(self) -> BinaryIO:
        if self._file is None:
            raise ValueError(f"{self.path}: file already committed or aborted")
        return self._file

    def commit(self) -> Path:
        """Flush to disk and rename over ``path``; on failure abort and re-raise."""
        handle = self.file
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            self._file = None
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._discard.detach()
        self.done = True
        _sync_folder(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Discard the temporary file; the destination keeps its previous content."""
        self._file = None
        self._discard()  # runs at most once, so aborting twice is harmless
        self.done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _discard_temporary(handle: BinaryIO, temp_path: Path) -> None:
    try:
        handle.close()
    except OSError:
        pass  # a full disk can fail the final flush; the file is discarded anyway
    try:
        os.unlink(temp_path)
    except FileNotFoundError:
        pass


def _sync_folder(folder: Path) -> None:
    """Persist the rename itself (POSIX); folders cannot be opened this way on Windows."""
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some network filesystems refuse fsync on folders; the rename already happened
    finally:
        os.close(descriptor)
