"""Keep a watch on the image folder that setup.json's ``EM_location`` names, wherever it is.

The scan finds datasets in the folder that the last valid ``setup.json`` names (``EM/`` unless
it says otherwise; see :func:`biosegment.catalog.reconcile.last_good_setup`).
:class:`ImageFolderWatch` keeps one observer watch on that same folder, so a stack dropped into a
relocated image folder is registered at once instead of at the next periodic rescan. When the
folder does not exist yet, the nearest existing folder on its way is watched instead, so its
creation is noticed. A location that leads out of the data folder (``../scans``, a symlink out)
is refused and logged, never watched: setup.json's check refuses it, so the last valid
setup's folder stays watched, and a symlink swapped after that check is caught here. The watcher's registrar thread
calls :meth:`ImageFolderWatch.follow` after each refresh; nothing else places or moves the watch.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch

from biosegment.catalog.reconcile import last_good_setup
from biosegment.catalog.setup_file import validate_setup
from biosegment.errors import InputError
from biosegment.folder_names import EM_DIR
from biosegment.paths import resolve_inside

__all__ = ["ImageFolderWatch", "image_location"]

log = logging.getLogger(__name__)


def image_location(root: Path) -> str:
    """The image folder the scan follows: the last valid setup.json's ``EM_location``."""
    document = last_good_setup(root)
    return document.em_location if document is not None else EM_DIR


def _refused_location(root: Path) -> str | None:
    """Why the current setup.json's ``EM_location`` is refused, or None when it is not."""
    _, problems = validate_setup(root)
    return next((str(p) for p in problems if p.where == "EM_location"), None)


class ImageFolderWatch:
    """The observer watch on the image folder of ``root``, moved when ``EM_location`` moves.

    :param root: the data folder (resolved).
    :param observer: the watchdog observer to schedule on.
    :param handler: the event handler the folder's events go to.
    :param covered: top-level folders that are already watched recursively; an image folder
        inside one of them needs no watch of its own.
    """

    def __init__(
        self,
        root: Path,
        observer: BaseObserver,
        handler: FileSystemEventHandler,
        *,
        covered: tuple[str, ...] = (),
    ):
        self.root = root
        self.location = EM_DIR
        self._observer = observer
        self._handler = handler
        self._covered = covered
        self._watch: ObservedWatch | None = None
        self._seen: tuple[str, str] | None = None
        self._refused: str | None = None

    def contains(self, parts: tuple[str, ...]) -> bool:
        """Whether a path (its parts below the data folder) is in the image folder."""
        own = PurePosixPath(self.location).parts
        return parts[: len(own)] == own

    def on_the_way(self, path: Path) -> bool:
        """Whether ``path`` is the image folder or a folder on the way to it."""
        target = self.root / self.location
        return path == target or path in target.parents

    def follow(self) -> bool:
        """Watch the folder setup.json names now; True when a new watch was placed on it (files
        may have landed there before, so the caller should rescan)."""
        location = image_location(self.root)
        refused = _refused_location(self.root)
        if refused is not None and refused != self._refused:
            log.warning("watcher: %s; the image folder stays %s/", refused, location)
        self._refused = refused
        try:
            resolved = resolve_inside(self.root, location)
        except InputError as exc:
            if (location, "outside") != self._seen:
                log.warning("watcher: EM_location %r is not watched: %s", location, exc.reason)
                self._move(location, None)
                self._seen = (location, "outside")
            return False
        folder, recursive = self._folder_to_watch(location, resolved)
        seen = (location, f"{folder}{'/...' if recursive else ''}")
        if seen == self._seen:
            return False
        self._seen = seen
        self._move(location, folder, recursive=recursive)
        if recursive:
            log.info("watcher: watching the image folder %s/", location)
        return recursive

    def _folder_to_watch(self, location: str, resolved: Path) -> tuple[Path | None, bool]:
        """The folder to watch for ``location`` and whether recursively: the image folder itself,
        else the nearest existing folder on its way (below the root, whose own watch sees a
        top-level folder appear); none inside a folder that is watched already."""
        if PurePosixPath(location).parts[0] in self._covered:
            return None, False
        target = self.root / location
        if resolved.is_dir():
            return target, True
        on_the_way = [p for p in target.parents if self.root in p.parents]
        return next((p for p in on_the_way if p.is_dir()), None), False

    def _move(self, location: str, folder: Path | None, *, recursive: bool = False) -> None:
        if self._watch is not None:
            try:
                self._observer.unschedule(self._watch)
            except (KeyError, OSError):
                pass  # the folder went away and its watch with it
            self._watch = None
        self.location = location
        if folder is not None:
            try:
                self._watch = self._observer.schedule(
                    self._handler, str(folder), recursive=recursive
                )
            except OSError as exc:  # deleted a moment ago: the next refresh tries again
                log.warning("watcher: cannot watch %s: %s", folder, exc)
