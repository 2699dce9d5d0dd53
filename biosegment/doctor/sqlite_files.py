"""Examine the SQLite files in ``.biosegment/`` and salvage the rows of damaged ones.

:func:`probe_database` says whether a database file is missing, healthy or corrupt (SQLite's
``quick_check``, plus the failure to open at all: a header overwritten with garbage reads as
"file is not a database"). :func:`salvage_rows` copies what can still be read out of a damaged
file, table by table and, where a table scan breaks, row by row, so a damaged catalog gives back
as much of its job history as its pages still hold. Setting a damaged file aside is
:func:`biosegment.sqlite_support.move_aside`, which ``reindex`` uses too; nothing is ever deleted.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatabaseHealth", "probe_database", "salvage_rows"]

#: Row-by-row salvage gives up on tables whose largest rowid is beyond this.
_MAX_ROWID_WALK = 200_000


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    path: Path
    state: str  #: "missing", "ok" or "corrupt"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def _connect_read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def probe_database(path: Path) -> DatabaseHealth:
    """Open ``path`` read-only and run ``PRAGMA quick_check``."""
    path = Path(path)
    if not path.exists():
        return DatabaseHealth(path, "missing", "the file does not exist")
    if path.stat().st_size == 0:
        # SQLite treats an empty file as a new, empty database: nothing in it to lose or trust.
        return DatabaseHealth(path, "corrupt", "the file is empty")
    try:
        conn = _connect_read_only(path)
    except sqlite3.Error as exc:
        return DatabaseHealth(path, "corrupt", str(exc))
    try:
        verdicts = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return DatabaseHealth(path, "ok", f"busy, not checked: {exc}")
        return DatabaseHealth(path, "corrupt", str(exc))
    except sqlite3.DatabaseError as exc:
        return DatabaseHealth(path, "corrupt", str(exc))
    finally:
        conn.close()
    if verdicts == ["ok"]:
        return DatabaseHealth(path, "ok")
    return DatabaseHealth(path, "corrupt", "; ".join(verdicts))


def _table_names(conn: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]


def _rows_one_by_one(conn: sqlite3.Connection, table: str) -> list[dict]:
    try:
        (highest,) = conn.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()
    except sqlite3.DatabaseError:
        return []
    rows = []
    for rowid in range(1, min(int(highest or 0), _MAX_ROWID_WALK) + 1):
        try:
            row = conn.execute(f'SELECT * FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            continue  # this row sits on a damaged page; its neighbours may not
        if row is not None:
            rows.append(dict(row))
    return rows


def salvage_rows(path: Path, tables: tuple[str, ...]) -> dict[str, list[dict]]:
    """Every row of ``tables`` that can still be read from ``path`` (missing tables are skipped)."""
    try:
        conn = _connect_read_only(path)
        present = set(_table_names(conn))
    except sqlite3.DatabaseError:
        return {}
    salvaged: dict[str, list[dict]] = {}
    try:
        for table in tables:
            if table not in present:
                continue
            try:
                salvaged[table] = [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
            except sqlite3.DatabaseError:
                salvaged[table] = _rows_one_by_one(conn, table)
    finally:
        conn.close()
    return salvaged
