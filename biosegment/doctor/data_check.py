"""Doctor's check of what the data folder holds: what cannot be used, named with its file.

A broken file (a truncated TIFF, a model file that is no checkpoint) or a mistake in
``setup.json`` is the person's to fix: the doctor reports each one as the catalog records it
(the file, the key and the reason, as ``biosegment status`` lists them) and changes nothing.
When the doctor may write (no daemon at work, not ``--check``) it first brings the catalog in
line with the folder; otherwise it reads what the catalog last recorded, which a running daemon
keeps current.
"""

from __future__ import annotations

from pathlib import Path

from biosegment.catalog import open_catalog, refresh
from biosegment.doctor.report import Finding
from biosegment.errors import BioSegmentError

__all__ = ["check_data"]


def check_data(
    root: Path, *, catalog_usable: bool, refresh_first: bool, forget_after: float
) -> Finding:
    """The problems of the folder's contents; ``catalog_usable``: the catalog check passed."""
    if not catalog_usable:
        return Finding("data", "skipped", "the catalog is not usable (see above)")
    try:
        with open_catalog(root) as catalog:
            if refresh_first:
                refresh(catalog, root, forget_after=forget_after)
            problems = catalog.all_problems()
    except BioSegmentError as exc:
        return Finding("data", "skipped", f"the catalog cannot be read: {exc}")
    if not problems:
        return Finding(
            "data", "ok", "every dataset, model, segmentation and annotation can be read"
        )
    return Finding(
        "data",
        "problem",
        f"{len(problems)} problem(s) in the data folder that doctor leaves to you "
        "(fix or remove the files named):",
        problems=[_line(p) for p in problems],
    )


def _line(problem: dict) -> str:
    where = f" [{problem['where']}]" if problem.get("where") else ""
    return f"{problem.get('source') or ''}{where}: {problem.get('reason')}"
