"""Periodic cleaning of the daemon's state folder: old job folders, stale caches and locks.

Job folders (``.biosegment/jobs/<id>/``: log, checkpoint, finished blocks) of jobs that ended
more than ``keep_days`` ago are removed; those of queued or running jobs never are, whatever
their age. Cache files under ``.biosegment/cache/`` that nobody touched for ``keep_days`` go too,
as do presence files of runners that died. Nothing outside ``.biosegment/`` is ever touched.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from biosegment.folder_lock import live_runners
from biosegment.folder_names import CACHE_DIR, JOBS_DIR

__all__ = ["clean_state_folder", "HousekeepingReport"]

log = logging.getLogger(__name__)
_TERMINAL = ("succeeded", "failed", "cancelled")
# A presence file is only removed when older than this, so a starting runner's file is safe.
_STALE_PRESENCE_S = 300.0


@dataclass(slots=True)
class HousekeepingReport:
    job_folders: int = 0
    cache_files: int = 0


def _age_days(timestamp: str | None, now: float) -> float | None:
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (now - moment.timestamp()) / 86400.0


def clean_state_folder(
    catalog, state_dir: Path, *, keep_days: float, now: float | None = None
) -> HousekeepingReport:
    """Remove what is older than ``keep_days`` (see the module docstring); return counts."""
    now = time.time() if now is None else now
    report = HousekeepingReport()
    jobs_dir = Path(state_dir) / JOBS_DIR
    if jobs_dir.is_dir():
        for folder in jobs_dir.iterdir():
            if not folder.is_dir():
                continue
            try:
                job = catalog.job(folder.name)
            except Exception:
                job = None
            if job is not None:
                if job["state"] not in _TERMINAL:
                    continue
                age = _age_days(job.get("finished_at") or job.get("updated_at"), now)
            else:
                age = (now - folder.stat().st_mtime) / 86400.0
            if age is not None and age > keep_days:
                shutil.rmtree(folder, ignore_errors=True)
                report.job_folders += 1
    cache_dir = Path(state_dir) / CACHE_DIR
    if cache_dir.is_dir():
        for path in cache_dir.rglob("*"):
            try:
                if path.is_file() and (now - path.stat().st_atime) / 86400.0 > keep_days:
                    path.unlink()
                    report.cache_files += 1
            except OSError:
                continue
    live_runners(Path(state_dir).parent, clean_stale_after=_STALE_PRESENCE_S)
    if report.job_folders or report.cache_files:
        log.info(
            "housekeeping: removed %d job folder(s), %d cache file(s)",
            report.job_folders,
            report.cache_files,
        )
    return report
