"""Decide when a change in the data folder is complete enough to register.

File events arrive long before a copy ends: a 2 GB stack copied from a microscope PC produces a
stream of "modified" events for minutes. :class:`ChangeTracker` collects events by area of the
data folder (``setup.json``, ``EM``, ``models``, ...) and keeps every file that is still being
written in a "settling" set. A file leaves that set when it is complete:

- on the close of a write or a rename into the folder (inotify and friends report both), or
- when nobody has it open and its size and mtime stayed the same for the settle window: the
  only signal on polling observers and network drives, and the one for files the observer
  reports without an open (those it finds in a folder created a moment before its watch).

A file someone opened is waiting for its close, however long the writer pauses; only if the
close never comes (a lost event) does a long silence count as complete.

:meth:`ChangeTracker.due` returns the areas to refresh once no file is settling and the folder
has been quiet for a short debounce, so a hundred datasets dropped at once cost one refresh and a
half-written file is never probed. A rescan can also be booked for a later moment
(:meth:`ChangeTracker.request_rescan_at`: a dataset that left the folder is forgotten then).
Time is passed in, which keeps the logic testable without sleeping.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from biosegment.folder_names import ANNOTATIONS_DIR, EM_DIR, MODELS_DIR, SEGMENTATIONS_DIR

__all__ = ["ChangeTracker", "Settling", "AREAS", "SETUP_AREA", "RESCAN_AREA"]

SETUP_AREA = "setup"
RESCAN_AREA = "rescan"
#: Top-level folders whose changes matter, plus the setup file and a full rescan.
AREAS = (EM_DIR, MODELS_DIR, SEGMENTATIONS_DIR, ANNOTATIONS_DIR, SETUP_AREA, RESCAN_AREA)


@dataclass(slots=True)
class Settling:
    """A file still being written: when we last heard of it and what it looked like then."""

    last_event: float
    size: int = -1
    mtime_ns: int = -1
    stable_since: float = 0.0


@dataclass
class ChangeTracker:
    """Thread-safe bookkeeping between the observer's thread and the registrar's thread.

    ``settle_seconds``: how long size and mtime must stay put for a file without a close event.
    ``close_events``: whether the observer reports closes; if not, every write settles by stat.
    ``quiet_seconds``: debounce after the last event before the areas are refreshed.
    ``lost_close_seconds``: with close events, how long a silent, stable file waits before we
    assume its close event was lost.
    ``max_wait_seconds``: a file written without end (a log someone keeps appending to) holds
    registration back at most this long.
    """

    settle_seconds: float = 1.0
    close_events: bool = True
    quiet_seconds: float = 0.2
    lost_close_seconds: float = 10.0
    max_wait_seconds: float = 120.0
    _dirty: set[str] = field(default_factory=set)
    _dirty_since: float | None = None
    _settling: dict[Path, Settling] = field(default_factory=dict)
    _open: dict[Path, int] = field(default_factory=dict)
    _last_event: float = 0.0
    _rescan_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _mark(self, area: str, now: float) -> None:
        if not self._dirty:
            self._dirty_since = now
        self._dirty.add(area)
        self._last_event = now

    def note_changed(self, area: str, now: float) -> None:
        """Something in ``area`` appeared, vanished or finished (close, rename, delete)."""
        with self._lock:
            self._mark(area, now)

    def note_writing(self, area: str, path: Path, now: float) -> None:
        """``path`` in ``area`` was created or modified and may still be growing."""
        with self._lock:
            self._mark(area, now)
            entry = self._settling.get(path)
            if entry is None:
                self._settling[path] = Settling(last_event=now, stable_since=now)
            else:
                entry.last_event = now

    def note_opened(self, path: Path) -> None:
        """Someone opened ``path`` (to write or to read: the close says which)."""
        with self._lock:
            self._open[path] = self._open.get(path, 0) + 1

    def note_closed_without_write(self, path: Path) -> None:
        with self._lock:
            self._closed(path)

    def _closed(self, path: Path) -> None:
        count = self._open.get(path, 0) - 1
        if count > 0:
            self._open[path] = count
        else:
            self._open.pop(path, None)

    def note_complete(self, area: str, path: Path, now: float, *, closed: bool = False) -> None:
        """``path`` was closed after writing (``closed``), or renamed into place: it is whole."""
        with self._lock:
            if closed:
                self._closed(path)
            else:
                self._open.pop(path, None)
            if self._open.get(path, 0) == 0:
                self._settling.pop(path, None)
            self._mark(area, now)

    def forget(self, path: Path, area: str, now: float) -> None:
        """``path`` (a file or a folder) was deleted or moved away."""
        with self._lock:
            for settling in [p for p in self._settling if p == path or path in p.parents]:
                del self._settling[settling]
            for opened in [p for p in self._open if p == path or path in p.parents]:
                del self._open[opened]
            self._mark(area, now)

    def request_rescan(self, now: float) -> None:
        with self._lock:
            if not self._dirty:
                self._dirty_since = now
            self._dirty.add(RESCAN_AREA)

    def request_rescan_at(self, when: float) -> None:
        """Ask for a rescan once the monotonic time ``when`` has come (the earliest one wins)."""
        with self._lock:
            if self._rescan_at is None or when < self._rescan_at:
                self._rescan_at = when

    @property
    def settling(self) -> list[Path]:
        with self._lock:
            return sorted(self._settling)

    def _settle_by_stat(self, now: float) -> None:
        """Let files whose size and mtime held still long enough leave the settling set."""
        for path, entry in list(self._settling.items()):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                del self._settling[path]  # renamed away or deleted: its own event says so
                self._open.pop(path, None)
                continue
            except OSError:
                continue
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                entry.size, entry.mtime_ns = stat.st_size, stat.st_mtime_ns
                entry.stable_since = now
                continue
            held_open = self.close_events and self._open.get(path, 0) > 0
            window = self.lost_close_seconds if held_open else self.settle_seconds
            quiet_for = now - max(entry.stable_since, entry.last_event)
            if quiet_for >= window:
                del self._settling[path]

    def due(self, now: float) -> set[str]:
        """Areas to refresh now (and forget); empty while files settle or events still flow."""
        with self._lock:
            if self._rescan_at is not None and now >= self._rescan_at:
                self._rescan_at = None
                if not self._dirty:
                    self._dirty_since = now
                self._dirty.add(RESCAN_AREA)
            if not self._dirty:
                return set()
            self._settle_by_stat(now)
            overdue = (
                self._dirty_since is not None and now - self._dirty_since >= self.max_wait_seconds
            )
            if not overdue:
                if self._settling:
                    return set()
                if now - self._last_event < self.quiet_seconds:
                    return set()
            areas, self._dirty, self._dirty_since = self._dirty, set(), None
            return areas

    def has_work(self) -> bool:
        with self._lock:
            return bool(self._dirty)
