"""Bring the catalog in line with the data folder, and rebuild it from scratch when needed.

:func:`refresh` is the one call the daemon (on every change it notices) and the CLI make: it
applies ``setup.json`` and then scans the folder. Running it twice in a row changes nothing the
second time. :func:`reindex` rebuilds ``catalog.db`` from the folder alone, for a catalog that
is lost, corrupt or suspect: the old file is moved aside (never deleted) and, when it can still
be read, its jobs and the rows people created in the UI are carried over into the new one. Stop
the daemon and workers before a reindex: a process holding the old file open keeps writing there.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from biosegment.catalog.forgetting import FORGET_AFTER_SECONDS
from biosegment.catalog.reconcile import last_good_setup, reconcile_setup
from biosegment.catalog.report import CatalogReport
from biosegment.catalog.rows import ENTITY_TABLES
from biosegment.catalog.scan import scan_data_folder
from biosegment.catalog.store import Catalog, catalog_path, open_catalog
from biosegment.sqlite_support import move_aside

__all__ = ["refresh", "reindex"]


def refresh(
    catalog: Catalog, root: Path, *, forget_after: float = FORGET_AFTER_SECONDS
) -> CatalogReport:
    """Apply ``setup.json`` (if valid) then register what the folder holds.

    ``forget_after``: seconds a dataset gone from the image folder stays listed as missing
    before it is forgotten (``[watch] forget_after_seconds``).
    """
    started = time.perf_counter()
    report = reconcile_setup(catalog, root)
    # The scan follows the last valid setup.json, so a broken edit does not move EM_location.
    report.merge(
        scan_data_folder(catalog, root, setup=last_good_setup(root), forget_after=forget_after)
    )
    report.seconds = time.perf_counter() - started
    return report


def reindex(root: Path) -> CatalogReport:
    """Rebuild ``<root>/.biosegment/catalog.db`` from the data folder.

    Keeps jobs and UI-created rows when the old catalog is readable; moves it aside as
    ``catalog.db.<time>.old`` (or ``.corrupt``) with its WAL files either way.
    """
    root = Path(root)
    path = catalog_path(root)
    carried: dict[str, list[dict]] = {}
    notes: list[str] = []
    if path.exists():
        carried, readable = _read_keepable_rows(path)
        moved = move_aside(path, "old" if readable else "corrupt")
        notes.append(
            f"previous catalog moved to {moved.name}"
            + ("" if readable else " (it could not be read)")
        )
    catalog = open_catalog(root)
    try:
        for table, rows in carried.items():
            catalog.restore_rows(table, rows)
        if carried.get("jobs"):
            notes.append(f"kept {len(carried['jobs'])} jobs")
        report = refresh(catalog, root)
    finally:
        catalog.close()
    report.notes[:0] = notes
    return report


def _read_keepable_rows(path: Path) -> tuple[dict[str, list[dict]], bool]:
    """Jobs and UI-created rows of an old catalog, and whether it could be read at all."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.DatabaseError:
        return {}, False
    try:
        conn.row_factory = sqlite3.Row
        (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            return {}, False
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        kept: dict[str, list[dict]] = {}
        if "jobs" in tables:
            kept["jobs"] = [dict(r) for r in conn.execute("SELECT * FROM jobs")]
        for table in ENTITY_TABLES:
            if table in tables:
                kept[table] = [
                    dict(r) for r in conn.execute(f"SELECT * FROM {table} WHERE origin = 'ui'")
                ]
        return kept, True
    except sqlite3.DatabaseError:
        return {}, False
    finally:
        conn.close()
