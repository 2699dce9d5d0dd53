"""When the catalog forgets a dataset that left the data folder.

A dataset the folder scan registered (it is not listed in ``setup.json``) whose files are no
longer in the image folder is first marked ``missing``, and listed as a problem, so a copy that
is moved out and back again loses nothing. If it is still gone ``forget_after`` seconds after it
went (the time its row was marked missing), the next scan forgets it: the row goes, and with it
the problem. Nothing on disk is touched, its annotations and segmentations included; if the
files come back, the dataset is registered anew. A dataset ``setup.json`` lists is never
forgotten (the person named it), nor is any when the image folder itself is not there (a
network drive that is not mounted is not a deletion).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["FORGET_AFTER_SECONDS", "forgettable", "next_forget_time"]

#: The default of ``[watch] forget_after_seconds``.
FORGET_AFTER_SECONDS = 60.0


def _missing_since(row: Mapping[str, Any]) -> float | None:
    """When a missing row was marked missing (its last update), as seconds since the epoch."""
    try:
        moment = datetime.fromisoformat(str(row["updated_at"]))
    except (KeyError, TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _candidate(row: Mapping[str, Any]) -> bool:
    return row.get("origin") == "scan" and row.get("state") == "missing"


def forgettable(row: Mapping[str, Any], *, forget_after: float, now: float) -> bool:
    """True for a dataset row the scan registered that has been missing long enough."""
    if not _candidate(row):
        return False
    since = _missing_since(row)
    return since is not None and now - since >= forget_after


def next_forget_time(
    rows: Iterable[Mapping[str, Any]], *, forget_after: float, now: float
) -> float | None:
    """The earliest future moment (seconds since the epoch) a dataset row becomes forgettable.

    None when no row waits for that: the daemon rescans at this moment to forget it on time.
    """
    times = [
        since + forget_after
        for row in rows
        if _candidate(row) and (since := _missing_since(row)) is not None
    ]
    future = [moment for moment in times if moment > now]
    return min(future) if future else None
