"""One SQLite connection to ``catalog.db``, set up for several processes at once.

The daemon, the CLI and every worker open the same catalog. It uses the set-up the accounts
database shares (:mod:`biosegment.sqlite_support`): WAL mode so readers continue while one
process writes, a busy timeout so a writer waits for the lock instead of failing, and every
write inside ``BEGIN IMMEDIATE``, held only for the few statements of one change, with nested
writes as savepoints. The catalog adds ``synchronous = NORMAL`` and errors that say what to do
with a file that is locked or damaged. A lock serialises threads sharing one
:class:`CatalogConnection`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from biosegment.errors import BioSegmentError
from biosegment.sqlite_support import BUSY_TIMEOUT_S, SharedConnection, open_shared

__all__ = ["CatalogConnection", "BUSY_TIMEOUT_S", "connect", "corrupt_catalog_error"]


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode with WAL, a busy timeout and row dicts."""
    try:
        conn = open_shared(path)
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
    return BioSegmentError(
        f"{path}: the catalog is damaged ({exc}); `biosegment reindex` "
        "rebuilds it from the data folder and keeps the damaged file aside"
    )


class CatalogConnection(SharedConnection):
    """Owns the connection (see :class:`~biosegment.sqlite_support.SharedConnection`), plus
    ``_db``, the sqlite-utils view of it that inserts and updates rows given as dicts."""

    def __init__(self, conn: sqlite3.Connection):
        super().__init__(conn)
        self._db = sqlite_utils.Database(conn)
