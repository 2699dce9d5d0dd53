"""One SQLite connection to ``catalog.db``, set up for several processes at once.

The daemon, the CLI and every worker open the same catalog. WAL mode lets readers continue while
one process writes; the busy timeout makes a writer wait for the lock instead of failing; every
write runs inside ``BEGIN IMMEDIATE`` so the lock is taken up front (a deferred transaction that
upgrades from read to write can fail with "database is locked" without waiting) and held only for
the few statements of one change. A lock serialises threads sharing one :class:`CatalogConnection`.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlite_utils

from biosegment.errors import BioSegmentError

__all__ = ["CatalogConnection", "BUSY_TIMEOUT_S", "connect", "corrupt_catalog_error"]

#: How long a process waits for another one's write to finish before giving up.
BUSY_TIMEOUT_S = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL, a busy timeout and row dicts."""
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only a power cut can lose
        # the last commits, which a rescan of the data folder restores.
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.OperationalError as exc:  # locked for too long, no permission, ...
        raise BioSegmentError(f"{path}: cannot open the catalog: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise corrupt_catalog_error(path, exc) from exc
    return conn


def corrupt_catalog_error(path: Path, exc: BaseException) -> BioSegmentError:
    """The error for a catalog file SQLite cannot make sense of, with the way out."""
    return BioSegmentError(f"{path}: the catalog is damaged ({exc}); `biosegment reindex` "
                           "rebuilds it from the data folder and keeps the damaged file aside")


class CatalogConnection:
    """Owns the connection; subclasses keep their SQL and use ``_write`` / ``_rows`` / ``_row``."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested use becomes a savepoint of the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    with self._db.atomic():
                        yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

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
