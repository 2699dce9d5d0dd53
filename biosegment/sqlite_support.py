"""The SQLite connection set-up and write transactions that the catalog and the accounts share.

``catalog.db`` and ``accounts.db`` are opened by the daemon, the CLI and every worker at the
same time. :func:`open_shared` opens a file in autocommit mode with WAL (readers continue while
one process writes) and a busy timeout (a writer waits for the lock instead of failing).
:class:`SharedConnection` runs every write inside ``BEGIN IMMEDIATE``, so the lock is taken up
front (a deferred transaction that upgrades from read to write can fail with "database is
locked" without waiting) and held only for the statements of one change; a write nested in
another becomes a savepoint of it, and an RLock serialises the threads that share a connection.
:func:`move_aside` sets a file that must be rebuilt aside, WAL included, never deleting it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["BUSY_TIMEOUT_S", "SIDE_SUFFIXES", "open_shared", "SharedConnection", "move_aside"]

#: How long a process waits for another one's write to finish before giving up.
BUSY_TIMEOUT_S = 30.0
#: The files SQLite keeps beside a database, named ``<database><suffix>``.
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def open_shared(path: Path) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL, the busy timeout and ``sqlite3.Row`` rows.

    SQLite's errors pass through: each caller words them for its own file.
    """
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _use_wal(conn)
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (a setting stored in the file), waiting out other processes doing the same.

    When several processes open a new database at once, switching its journal mode can answer
    "database is locked" at once instead of waiting for the busy timeout, so it is retried.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SharedConnection:
    """Owns a connection; subclasses keep their SQL and use ``_write`` / ``_rows`` / ``_row``."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested use becomes a savepoint of the outer one."""
        with self._lock:
            if self._depth:
                with self._savepoint():
                    yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._conn.execute("COMMIT")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        name = f"nested_{self._depth}"
        self._depth += 1
        try:
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                # An error such as a RAISE(ROLLBACK) trigger can end the whole transaction,
                # savepoints included; then there is nothing left to roll back to.
                if self._conn.in_transaction:
                    self._conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    self._conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            self._conn.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._depth -= 1

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._conn.execute(sql, params).fetchall()]

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return None if row is None else dict(row)

    def close(self) -> None:
        """Close the connection (further calls fail)."""
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def move_aside(path: Path, label: str) -> Path:
    """Rename ``path`` and its side files to ``<name>.<UTC time>.<label>``; return the new path.

    Side files move even when ``path`` itself is gone, so leftovers of a lost database are not
    taken up by the new one.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.{label}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.{stamp}-{counter}.{label}")
    # The WAL may hold the newest commits: it stays with the file it belongs to.
    for suffix in SIDE_SUFFIXES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    if path.exists():
        os.replace(path, target)
    return target
