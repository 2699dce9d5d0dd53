"""Keep the catalog in step with the data folder while the daemon runs.

A watchdog observer (inotify, FSEvents, ReadDirectoryChanges, or polling when ``[watch] poll``
is set, as network drives need) reports file events from the data folder's ``EM/``, ``models/``,
``segmentations/`` and ``annotations/`` folders, from ``setup.json``, and from the image folder
that setup.json's ``EM_location`` names, followed wherever it moves
(:class:`~biosegment.daemon.image_folder.ImageFolderWatch`). Temporary names
(``*.part``, ``*.tmp``, dotfiles) and the daemon's own ``.biosegment/`` never count. Events feed
a :class:`~biosegment.daemon.changes.ChangeTracker`; one registrar thread, which owns its own
catalog connection, refreshes the catalog once the changed files are complete, then tells the
daemon which datasets appeared (for automatic segmentation). A full rescan can be requested at
any time (the scheduler does so periodically), and runs on the same thread, so scans never
overlap. After a refresh that leaves a removed dataset waiting to be forgotten
(:mod:`~biosegment.catalog.forgetting`), a rescan is booked for the moment it may go, so it
leaves the catalog on time rather than at the next periodic rescan.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from biosegment.catalog.forgetting import next_forget_time
from biosegment.daemon.changes import AREAS, RESCAN_AREA, SETUP_AREA, ChangeTracker
from biosegment.daemon.image_folder import ImageFolderWatch
from biosegment.folder_names import EM_DIR, SETUP_FILE
from biosegment.paths import is_temporary_name

__all__ = ["DataFolderWatcher", "RefreshOutcome", "classify_path"]

log = logging.getLogger(__name__)


_WATCHED_FOLDERS = tuple(a for a in AREAS if a not in (SETUP_AREA, RESCAN_AREA))
#: How often the registrar looks at settling files when nothing else wakes it.
_TICK_S = 0.1


def classify_path(root: Path, path: str | Path, *, images: str = EM_DIR) -> str | None:
    """The area a path belongs to (``EM``, ``models``, ..., ``setup``) or None to ignore it.

    ``images`` is the image folder setup.json names (``EM_location``); what is in it counts as
    ``EM``, as what is in ``EM/`` does.
    """
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return None
    if not parts:
        return None
    if any(is_temporary_name(part) for part in parts):
        return None
    image_parts = Path(images).parts
    if parts[: len(image_parts)] == image_parts:
        return EM_DIR
    if len(parts) == 1:
        if parts[0] == SETUP_FILE:
            return SETUP_AREA
        return parts[0] if parts[0] in _WATCHED_FOLDERS else None
    return parts[0] if parts[0] in _WATCHED_FOLDERS else None


class RefreshOutcome:
    """What one refresh of the catalog found: datasets that became available, and any error."""

    def __init__(
        self, areas: set[str], new_datasets: list[str], seconds: float, error: str | None = None
    ):
        self.areas = areas
        self.new_datasets = new_datasets
        self.seconds = seconds
        self.error = error

    def __repr__(self) -> str:
        return (
            f"RefreshOutcome(areas={sorted(self.areas)}, new={self.new_datasets}, "
            f"seconds={self.seconds:.3f}, error={self.error!r})"
        )


_INOTIFY_LOG = logging.getLogger("watchdog.observers.inotify")


class _QuietStop(logging.Filter):
    """Drop watchdog's "queue_events() called when the thread is inactive" while we stop.

    An inotify emitter that is being stopped may read once more after it let go of its watch
    group and logs that as an error; nothing is lost (we are stopping), so a clean shutdown
    should not print it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


class _EventHandler(FileSystemEventHandler):
    def __init__(self, watcher: DataFolderWatcher):
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(event)
        except Exception:  # the observer thread must survive anything one event does
            log.exception("watcher: cannot handle %s", event)


class DataFolderWatcher:
    """Watch ``root`` and refresh the catalog as files land, change or vanish.

    :param root: the data folder.
    :param refresh: ``refresh(catalog) -> None`` brings the catalog up to date with the whole
        folder (cheap when little changed); it runs on the registrar thread with that thread's
        catalog. The areas that changed are reported in :class:`RefreshOutcome`, not passed
        on: the catalog's refresh always looks at everything, so that setup.json and the files
        it names stay in step.
    :param open_catalog: opens a catalog connection for the registrar thread.
    :param on_refreshed: called after every refresh with a :class:`RefreshOutcome`.
    :param poll: use a polling observer (network drives); ``settle_seconds`` then decides when
        a file is complete.
    :param forget_after: the ``forget_after`` the refresh uses: a rescan is booked for when a
        dataset gone from the folder may be forgotten. None books nothing.
    """

    def __init__(
        self,
        root: Path,
        *,
        refresh: Callable[[object], object],
        open_catalog: Callable[[], object],
        on_refreshed: Callable[[RefreshOutcome], None] | None = None,
        poll: bool = False,
        settle_seconds: float = 1.0,
        poll_interval: float = 0.5,
        forget_after: float | None = None,
    ):
        self.root = Path(root).resolve()
        self._forget_after = forget_after
        self._refresh = refresh
        self._open_catalog = open_catalog
        self._on_refreshed = on_refreshed
        self.poll = poll
        self.tracker = ChangeTracker(settle_seconds=settle_seconds, close_events=not poll)
        self._observer = PollingObserver(timeout=poll_interval) if poll else Observer()
        self._watched: set[str] = set()
        self._images = ImageFolderWatch(
            self.root, self._observer, _EventHandler(self), covered=_WATCHED_FOLDERS
        )
        self._follow_images = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch_lock = threading.Lock()
        self._busy = threading.Event()
        self.refreshes = 0
        self.last_outcome: RefreshOutcome | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, initial_scan: bool = True) -> None:
        """Start observing, then (optionally) scan once so nothing before the start is missed."""
        self._observer.schedule(_EventHandler(self), str(self.root), recursive=False)
        for name in _WATCHED_FOLDERS:
            self._watch_folder(name)
        self._images.follow()
        self._observer.start()
        if initial_scan:
            self.tracker.request_rescan(time.monotonic())
        self._thread = threading.Thread(target=self._run, name="biosegment-registrar", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        quiet = _QuietStop()
        _INOTIFY_LOG.addFilter(quiet)
        try:
            self._observer.stop()
            self._observer.join(timeout=5)
        except RuntimeError:
            pass  # never started
        finally:
            _INOTIFY_LOG.removeFilter(quiet)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def request_rescan(self) -> None:
        """Ask for a full rescan (the scheduler's periodic safety net)."""
        self.tracker.request_rescan(time.monotonic())
        self._wake.set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no change is pending (tests and the benchmark use this)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.tracker.has_work() and not self._busy.is_set():
                return True
            time.sleep(0.02)
        return False

    # -- events ----------------------------------------------------------------------------

    def _watch_folder(self, name: str) -> None:
        folder = self.root / name
        with self._watch_lock:
            if name in self._watched or not folder.is_dir():
                return
            self._observer.schedule(_EventHandler(self), str(folder), recursive=True)
            self._watched.add(name)

    @property
    def image_location(self) -> str:
        """The image folder being watched: setup.json's ``EM_location`` (``EM`` by default)."""
        return self._images.location

    def _on_event(self, event: FileSystemEvent) -> None:
        now = time.monotonic()
        kind = event.event_type
        if event.is_directory and self._on_the_way_to_images(event):
            # The image folder (or a folder on its way) appeared or went: the registrar moves
            # the watch; events are not lost meanwhile, the rescan after a move finds them.
            self._follow_images.set()
            self._wake.set()
        images = self._images.location
        if kind == EVENT_TYPE_MOVED:
            source_area = classify_path(self.root, event.src_path, images=images)
            if source_area is not None:
                self.tracker.forget(Path(event.src_path), source_area, now)
            dest_area = classify_path(self.root, event.dest_path, images=images)
            if dest_area is not None:
                self._arrived(dest_area, Path(event.dest_path), event.is_directory, now)
                self.tracker.note_complete(dest_area, Path(event.dest_path), now)
        else:
            area = classify_path(self.root, event.src_path, images=images)
            if area is None:
                return
            path = Path(event.src_path)
            if kind == EVENT_TYPE_DELETED:
                self.tracker.forget(path, area, now)
            elif kind == EVENT_TYPE_CLOSED:
                self.tracker.note_complete(area, path, now, closed=True)
            elif kind == EVENT_TYPE_OPENED:
                if not event.is_directory:
                    self.tracker.note_opened(path)
                return
            elif kind == EVENT_TYPE_CLOSED_NO_WRITE:
                if not event.is_directory:
                    self.tracker.note_closed_without_write(path)
                return
            elif kind in (EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED):
                if event.is_directory:
                    self._arrived(area, path, True, now)
                    self.tracker.note_changed(area, now)
                else:
                    self.tracker.note_writing(area, path, now)
            else:
                return  # attribute changes: nothing new to register
        self._wake.set()

    def _on_the_way_to_images(self, event: FileSystemEvent) -> bool:
        paths = [event.src_path, getattr(event, "dest_path", "")]
        return any(p and self._images.on_the_way(Path(os.fsdecode(p))) for p in paths)

    def _arrived(self, area: str, path: Path, is_directory: bool, now: float) -> None:
        """A top-level folder such as ``EM/`` was created after start: watch it too."""
        if is_directory and path.parent == self.root and area in _WATCHED_FOLDERS:
            self._watch_folder(area)
            # Files may have landed before the watch existed; the rescan below finds them.
            self.tracker.request_rescan(now)

    # -- registrar thread ------------------------------------------------------------------

    def _run(self) -> None:
        catalog = None
        try:
            catalog = self._open_catalog()
            while not self._stop.is_set():
                self._wake.wait(_TICK_S)
                self._wake.clear()
                if self._follow_images.is_set():
                    self._follow_images.clear()
                    self._follow_image_folder()
                areas = self.tracker.due(time.monotonic())
                if areas:
                    self._refresh_now(catalog, areas)
                    # The refresh applied setup.json: EM_location may name another folder now.
                    self._follow_image_folder()
        except Exception:
            log.exception("watcher: the registrar stopped")
        finally:
            if catalog is not None:
                catalog.close()

    def _follow_image_folder(self) -> None:
        try:
            placed = self._images.follow()
        except Exception:  # a folder that cannot be watched must not stop the registrar
            log.exception("watcher: cannot follow the image folder")
            return
        if placed:
            self.tracker.request_rescan(time.monotonic())

    def _refresh_now(self, catalog, areas: set[str]) -> None:
        self._busy.set()
        started = time.monotonic()
        before = _available_datasets(catalog)
        error = None
        try:
            self._refresh(catalog)
        except Exception as exc:  # an unreadable folder must not stop the daemon
            error = f"{type(exc).__name__}: {exc}"
            log.exception("watcher: refresh of %s failed", sorted(areas))
        after = _available_datasets(catalog)
        self._book_forget_rescan(catalog)
        outcome = RefreshOutcome(areas, sorted(after - before), time.monotonic() - started, error)
        self.refreshes += 1
        self.last_outcome = outcome
        log.debug("watcher: %s", outcome)
        try:
            if self._on_refreshed is not None:
                self._on_refreshed(outcome)
        except Exception:
            log.exception("watcher: after-refresh hook failed")
        finally:
            self._busy.clear()

    def _book_forget_rescan(self, catalog) -> None:
        """Book a rescan for when a dataset that left the folder may be forgotten."""
        if self._forget_after is None:
            return
        try:
            rows = catalog.datasets()
        except Exception:  # a catalog that cannot be read now: the periodic rescan follows
            log.exception("watcher: cannot read the datasets to book a rescan")
            return
        now = time.time()
        when = next_forget_time(rows, forget_after=self._forget_after, now=now)
        if when is not None:
            # a hair later than the moment itself, so the scan then finds it old enough
            self.tracker.request_rescan_at(time.monotonic() + (when - now) + 0.05)


def _available_datasets(catalog) -> set[str]:
    try:
        return {d["name"] for d in catalog.datasets() if d.get("state") == "ok"}
    except Exception:
        return set()
