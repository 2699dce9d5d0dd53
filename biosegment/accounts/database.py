"""The accounts database, ``<data>/.biosegment/accounts.db``: its file, schema and connection.

Accounts live in their own SQLite file, not in the catalog: the catalog can be rebuilt from the
data folder at any time (``reindex``, ``doctor``) while people and their credentials cannot. The
file is created readable by its owner only, since it holds password hashes. Schema changes are
numbered steps recorded in ``PRAGMA user_version``, applied in order inside one transaction
each. Like the catalog, the connection uses WAL, a busy timeout and ``BEGIN IMMEDIATE`` writes
(:mod:`biosegment.sqlite_support`), because the daemon and the CLI open it at the same time.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from biosegment.errors import BioSegmentError
from biosegment.folder_names import ACCOUNTS_FILE, STATE_DIR
from biosegment.sqlite_support import SharedConnection, open_shared

__all__ = ["AccountsConnection", "accounts_path", "connect_accounts", "now_iso", "parse_time"]

_SCHEMA_STEPS = [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'annotator', 'viewer')),
        password_hash TEXT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,               -- the public half, shown in lists
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        secret_hash TEXT NOT NULL,         -- SHA-256 of the secret half
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    );
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,          -- SHA-256 of the id in the browser's cookie
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT,                       -- JSON
        remote TEXT
    );
    CREATE INDEX audit_by_action ON audit (action, id);
    """,
]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def accounts_path(root: Path) -> Path:
    return Path(root) / STATE_DIR / ACCOUNTS_FILE


def _create_private(path: Path) -> None:
    """Create an empty file readable by its owner only, unless it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(_SCHEMA_STEPS):
        raise BioSegmentError(f"{path} was written by a newer BioSegment (schema {version}); "
                              "upgrade BioSegment to use it")
    for number, step in enumerate(_SCHEMA_STEPS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            (current,) = conn.execute("PRAGMA user_version").fetchone()
            if current < number:  # another process may have applied it while we waited
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def connect_accounts(root: Path) -> tuple[sqlite3.Connection, Path]:
    """Open (creating and migrating) the accounts database of the data folder ``root``."""
    path = accounts_path(root)
    _create_private(path)
    try:
        conn = open_shared(path)
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        raise BioSegmentError(f"{path}: the accounts database cannot be used ({exc}); "
                              "`biosegment doctor` sets a damaged one aside, then recreate the "
                              "accounts with `biosegment users add`") from exc
    return conn, path


class AccountsConnection(SharedConnection):
    """Owns the connection; the stores mixed in keep their SQL and use the helpers of
    :class:`~biosegment.sqlite_support.SharedConnection`."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        super().__init__(conn)
        self.path = path
