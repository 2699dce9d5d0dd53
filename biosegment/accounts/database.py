"""The accounts database, ``<data>/.biosegment-accounts/accounts.db``: file, schema, connection.

Accounts live in their own SQLite file, not in the catalog: the catalog can be rebuilt from the
data folder at any time (``reindex``, ``doctor``) while people and their credentials cannot.
They also live outside ``.biosegment/``, which holds only state that can be rebuilt, so that
deleting that folder to start the index afresh never takes the accounts, tokens and audit log
with it; a database found at the old place (``.biosegment/accounts.db``) is moved on first
use. The folder is private to its owner (0700 on POSIX) and the file readable by its owner
only, since it holds password hashes. Schema changes are
numbered steps recorded in ``PRAGMA user_version``, applied in order inside one transaction
each. Like the catalog, the connection uses WAL, a busy timeout and ``BEGIN IMMEDIATE`` writes
(:mod:`biosegment.sqlite_support`), because the daemon and the CLI open it at the same time.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from biosegment.errors import BioSegmentError
from biosegment.folder_names import ACCOUNTS_DIR, ACCOUNTS_FILE, STATE_DIR
from biosegment.sqlite_support import SharedConnection, open_shared

__all__ = [
    "AccountsConnection",
    "accounts_path",
    "legacy_accounts_path",
    "move_legacy_accounts",
    "connect_accounts",
    "now_iso",
    "parse_time",
]

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
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def accounts_path(root: Path) -> Path:
    return Path(root) / ACCOUNTS_DIR / ACCOUNTS_FILE


def legacy_accounts_path(root: Path) -> Path:
    """Where BioSegment kept accounts before: inside the rebuildable ``.biosegment``."""
    return Path(root) / STATE_DIR / ACCOUNTS_FILE


def _private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        os.chmod(folder, 0o700)


def move_legacy_accounts(root: Path) -> bool:
    """Move ``.biosegment/accounts.db`` to :func:`accounts_path` when only the old one exists.

    The old file's write-ahead log is folded in first, the copy is linked into place (so two
    processes never both install one) and only then is the old file removed. Returns True when
    it moved a database.
    """
    old, new = legacy_accounts_path(root), accounts_path(root)
    if new.exists() or not old.is_file():
        return False
    _private_folder(new.parent)
    try:
        conn = sqlite3.connect(old)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        pass  # a damaged file moves as it is; `biosegment doctor` recovers what it holds
    staging = new.with_name(f".{new.name}.{os.getpid()}.moving")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as target, open(old, "rb") as source:
        while chunk := source.read(1 << 20):
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
    try:
        os.link(staging, new)
    except FileExistsError:
        return False  # another process moved it first
    except OSError:  # a file system without hard links
        os.replace(staging, new)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{old}{suffix}")
        except FileNotFoundError:
            pass
    return True


def _create_private(path: Path) -> None:
    """Create an empty file readable by its owner only (in a private folder), unless it exists."""
    _private_folder(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(_SCHEMA_STEPS):
        raise BioSegmentError(
            f"{path} was written by a newer BioSegment (schema {version}); "
            "upgrade BioSegment to use it"
        )
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
    move_legacy_accounts(root)
    _create_private(path)
    try:
        conn = open_shared(path)
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        raise BioSegmentError(
            f"{path}: the accounts database cannot be used ({exc}); "
            "`biosegment doctor` sets a damaged one aside, then recreate the "
            "accounts with `biosegment users add`"
        ) from exc
    return conn, path


class AccountsConnection(SharedConnection):
    """Owns the connection; the stores mixed in keep their SQL and use the helpers of
    :class:`~biosegment.sqlite_support.SharedConnection`."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        super().__init__(conn)
        self.path = path
