"""Doctor's catalog check: detect a missing or damaged ``catalog.db`` and rebuild it.

The rebuild follows :func:`biosegment.catalog.reindex`, with one addition for a damaged file:
rows still readable in it (jobs, and things people created in the UI) are salvaged page by page
before it is set aside, and written into the new catalog ahead of the folder scan. Everything
that lives in the data folder (datasets, models, segmentations, annotations, projects of
``setup.json``) comes back from the scan itself.
"""

from __future__ import annotations

from pathlib import Path

from biosegment.catalog import open_catalog, refresh
from biosegment.catalog.rows import ENTITY_TABLES
from biosegment.catalog.store import catalog_path
from biosegment.doctor.report import Finding
from biosegment.doctor.sqlite_files import probe_database, salvage_rows
from biosegment.errors import BioSegmentError
from biosegment.sqlite_support import move_aside

__all__ = ["check_catalog", "catalog_totals"]


def catalog_totals(root: Path) -> dict[str, int]:
    """Rows per table of the catalog (all states), for the report."""
    with open_catalog(root) as catalog:
        counts = catalog.counts()
    return {table: counts[table]["total"] for table in (*ENTITY_TABLES, "jobs")}


def _keepable(salvaged: dict[str, list[dict]]) -> dict[str, list[dict]]:
    kept = {"jobs": salvaged.get("jobs", [])}
    for table in ENTITY_TABLES:
        kept[table] = [row for row in salvaged.get(table, []) if row.get("origin") == "ui"]
    return kept


def _rebuild(root: Path, carried: dict[str, list[dict]]) -> tuple[dict[str, int], list[dict]]:
    with open_catalog(root) as catalog:
        restored = {table: catalog.restore_rows(table, rows) for table, rows in carried.items()}
        report = refresh(catalog, root)
    totals = catalog_totals(root)
    totals["jobs_salvaged"] = restored.get("jobs", 0)
    return totals, report.problems


def check_catalog(root: Path, *, repair: bool) -> Finding:
    path = catalog_path(root)
    health = probe_database(path)
    if health.ok:
        try:
            totals = catalog_totals(root)
        except BioSegmentError as exc:
            return Finding("catalog", "problem", str(exc))
        summary = ", ".join(f"{n} {table}" for table, n in totals.items())
        return Finding("catalog", "ok", f"{path.name} is healthy: {summary}")
    if not repair:
        return Finding(
            "catalog",
            "problem",
            f"{path} is {health.state} ({health.detail}); run `biosegment doctor` "
            "to rebuild it from the data folder",
        )
    moved = None
    carried: dict[str, list[dict]] = {}
    if health.state == "corrupt":
        carried = _keepable(salvage_rows(path, ("jobs", *ENTITY_TABLES)))
        moved = move_aside(path, "corrupt")
    else:
        # A missing main file with leftover WAL files must not lend them to the new one.
        move_aside(path, "orphaned")
    totals, problems = _rebuild(root, carried)
    found = ", ".join(
        f"{totals[t]} {t}"
        for t in ("datasets", "models", "segmentations", "annotations", "projects")
    )
    detail = (
        f"{path.name} was {health.state} ({health.detail}); rebuilt from the data folder: "
        f"{found}; {totals['jobs_salvaged']} job(s) salvaged from the old file"
    )
    if moved is not None:
        detail += f"; the damaged file is kept as {moved.name}"
    if problems:
        detail += f"; {len(problems)} problem(s) in the folder, see `biosegment status`"
    return Finding(
        "catalog",
        "repaired",
        detail,
        recovered=totals,
        moved_aside=None if moved is None else str(moved),
    )
