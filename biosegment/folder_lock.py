"""Who is serving a data folder: the daemon's lock file and the presence files of job runners.

One daemon per data folder: ``.biosegment/daemon.lock`` is held with an exclusive ``flock`` for
the daemon's lifetime and names its pid, host and web address. Every process that runs jobs (the
daemon, each ``biosegment worker``, a CLI running a job in-process) also holds a presence lock in
``.biosegment/workers/``. The kernel drops these locks when a process dies, even by ``kill -9``,
and ``flock`` works across machines on NFS, so "is that job's runner still alive?" has an answer
that needs no pid guessing and no clock. Where ``fcntl`` is missing (Windows) a lock counts as
held while the pid it names exists on this host.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from biosegment.errors import BioSegmentError
from biosegment.folder_names import DAEMON_LOCK, STATE_DIR, WORKERS_DIR

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "FolderLock",
    "DaemonAlreadyRunning",
    "acquire_daemon_lock",
    "daemon_running",
    "daemon_info",
    "PresenceLock",
    "runner_identity",
    "runner_alive",
    "live_runners",
]


class DaemonAlreadyRunning(BioSegmentError):
    """Another daemon holds the data folder's lock."""


def _state_dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_owner(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _is_held(path: Path) -> bool:
    """True when some process holds ``path``'s lock (probing never blocks and never holds)."""
    if not path.exists():
        return False
    if fcntl is None:  # pragma: no cover - Windows
        owner = _read_owner(path)
        return (
            owner.get("host") == socket.gethostname()
            and isinstance(owner.get("pid"), int)
            and _pid_exists(owner["pid"])
        )
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        # A filesystem without locks: fall back to the pid, which only this host can check.
        owner = _read_owner(path)
        return (
            owner.get("host") == socket.gethostname()
            and isinstance(owner.get("pid"), int)
            and _pid_exists(owner["pid"])
        )
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class FolderLock:
    """An exclusive lock on one file, held until :meth:`release` (or the process dies)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None
        self._owner: dict = {}

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def owner(self) -> dict:
        """What the lock file says about its holder (pid, host, and what the holder added)."""
        return dict(self._owner)

    def try_acquire(self, owner: dict) -> bool:
        """Take the lock and write ``owner`` into the file; False when someone else holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
        elif _is_held(self.path):  # pragma: no cover - Windows
            os.close(fd)
            return False
        self._fd = fd
        self.update(owner)
        return True

    def update(self, owner: dict) -> None:
        """Rewrite the owner description (e.g. to add the web address once it is known)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path}: lock not held")
        self._owner = dict(owner)
        data = (json.dumps(self._owner, sort_keys=True) + "\n").encode("utf-8")
        # Rewrite in place: replacing the file would leave our lock on an unlinked inode.
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def release(self, *, remove: bool = True) -> None:
        """Unlock; ``remove`` also deletes the file (only for names no other process reuses)."""
        if self._fd is None:
            return
        if remove:
            # Unlink before unlocking so a newcomer never locks a file that is about to vanish.
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _base_owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def acquire_daemon_lock(root: Path, **details) -> FolderLock:
    """Take the data folder's daemon lock or raise :class:`DaemonAlreadyRunning` naming the owner."""
    lock = FolderLock(_state_dir(root) / DAEMON_LOCK)
    if not lock.try_acquire({**_base_owner(), **details}):
        owner = _read_owner(lock.path)
        who = f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"
        url = f", serving {owner['url']}" if owner.get("url") else ""
        raise DaemonAlreadyRunning(
            f"{lock.path}: another BioSegment daemon ({who}{url}) already serves {root}; "
            "stop it first or use a different data folder"
        )
    return lock


def daemon_running(root: Path) -> bool:
    """True when a live daemon holds ``root``'s lock (a stale file left by a crash is not one)."""
    return _is_held(_state_dir(root) / DAEMON_LOCK)


def daemon_info(root: Path) -> dict | None:
    """The running daemon's pid, host and url, or None when no daemon serves ``root``."""
    path = _state_dir(root) / DAEMON_LOCK
    return _read_owner(path) if _is_held(path) else None


def runner_identity(role: str) -> str:
    """The name a job runner writes into the job rows it claims: ``host:pid:role``."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def _presence_path(root: Path, identity: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
    return _state_dir(root) / WORKERS_DIR / f"{safe}.lock"


class PresenceLock:
    """Says "this job runner is alive" for as long as it is held.

    Several roles in one process (a daemon's consumer and an in-process CLI job never share a
    process, but tests may) each get their own file; a process-local count keeps the lock while
    any holder of the same identity remains.
    """

    _held: dict[Path, tuple[FolderLock, int]] = {}
    _guard = threading.Lock()

    def __init__(self, root: Path, role: str):
        self.root = Path(root)
        self.identity = runner_identity(role)
        self.path = _presence_path(self.root, self.identity)
        self._entered = False

    def acquire(self) -> PresenceLock:
        with self._guard:
            lock, count = self._held.get(self.path, (None, 0))
            if lock is None:
                lock = FolderLock(self.path)
                if not lock.try_acquire({**_base_owner(), "identity": self.identity}):
                    raise BioSegmentError(f"{self.path}: presence lock held by another process")
            self._held[self.path] = (lock, count + 1)
            self._entered = True
        return self

    def release(self) -> None:
        with self._guard:
            if not self._entered:
                return
            self._entered = False
            lock, count = self._held[self.path]
            if count <= 1:
                del self._held[self.path]
                lock.release()
            else:
                self._held[self.path] = (lock, count - 1)

    def __enter__(self) -> PresenceLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def runner_alive(root: Path, identity: str | None) -> bool:
    """True when the job runner named ``identity`` (see :func:`runner_identity`) still lives."""
    if not identity:
        return False
    return _is_held(_presence_path(root, identity))


def live_runners(root: Path, *, clean_stale_after: float | None = None) -> list[dict]:
    """Owners of the presence locks still held.

    With ``clean_stale_after`` (seconds), files of dead runners older than that are removed; the
    age guard keeps us from unlinking a file that a starting runner has created but not locked.
    """
    folder = _state_dir(root) / WORKERS_DIR
    alive = []
    try:
        entries = sorted(folder.glob("*.lock"))
    except OSError:
        return []
    for path in entries:
        if _is_held(path):
            alive.append(_read_owner(path))
        elif clean_stale_after is not None:
            try:
                if time.time() - path.stat().st_mtime > clean_stale_after:
                    path.unlink()
            except OSError:
                pass
    return alive
