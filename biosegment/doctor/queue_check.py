"""Doctor's queue check: detect a missing or damaged ``queue.db`` and refill it from the catalog.

A queue message only carries a job id; the job itself is a catalog row. So a lost queue loses no
job: a fresh ``queue.db`` is created and every job the catalog still calls ``queued`` (or
``running`` with no live runner) is put back on it by the same recovery the daemon runs at
start. A Redis queue is outside the data folder and is not examined here.
"""

from __future__ import annotations

from biosegment.catalog import open_catalog
from biosegment.config import Config
from biosegment.doctor.report import Finding
from biosegment.doctor.sqlite_files import probe_database
from biosegment.errors import BioSegmentError
from biosegment.folder_names import QUEUE_FILE
from biosegment.sqlite_support import move_aside
from biosegment.tasks.queue import make_huey
from biosegment.tasks.recovery import CRASH_LIMIT, recover_jobs

__all__ = ["check_queue"]


def _refill(config: Config) -> dict[str, list[str]]:
    huey = make_huey(config)
    try:
        with open_catalog(config.data_dir) as catalog:
            report = recover_jobs(catalog, huey, config.data_dir)
    finally:
        huey.storage.close()
    return {
        "requeued": list(report.requeued),
        "enqueued": list(report.enqueued),
        "cancelled": list(report.cancelled),
        "failed": list(report.failed),
    }


def _waiting_jobs(config: Config) -> int:
    try:
        with open_catalog(config.data_dir) as catalog:
            return len(catalog.jobs_in_state("queued")) + len(catalog.jobs_in_state("running"))
    except BioSegmentError:
        return 0  # the catalog check reports a broken catalog


def check_queue(config: Config, *, repair: bool) -> Finding:
    if config.queue.url:
        return Finding("queue", "skipped", "the queue is on a Redis server; not checked here")

    path = config.state_dir / QUEUE_FILE
    health = probe_database(path)
    if not repair:
        if health.ok:
            return Finding("queue", "ok", f"{path.name} is healthy")
        if health.state == "missing" and not _waiting_jobs(config):
            return Finding("queue", "ok", f"{path.name} does not exist yet and no job waits")
        return Finding(
            "queue",
            "problem",
            f"{path} is {health.state} ({health.detail}); run "
            "`biosegment doctor` to recreate it from the catalog",
        )
    moved = move_aside(path, "corrupt") if health.state == "corrupt" else None
    jobs = _refill(config)
    back = len(jobs["requeued"]) + len(jobs["enqueued"])
    failed = (
        f"; failed {len(jobs['failed'])} job(s) whose runner stopped under them {CRASH_LIMIT} "
        f"times, not retried ({', '.join(jobs['failed'])}: see their messages)"
        if jobs["failed"]
        else ""
    )
    if health.state != "corrupt" and not back and not jobs["cancelled"] and not failed:
        # A folder that never ran a job has no queue yet: that is not a fault.
        return Finding(
            "queue",
            "ok",
            f"{path.name} is {'healthy' if health.ok else 'new'} and holds every queued job",
        )
    if health.ok:
        return Finding(
            "queue",
            "repaired",
            f"{path.name} is healthy; put {back} job(s) that had lost their queue entry back on "
            f"it{failed}",
            recovered=jobs,
        )
    detail = (
        f"{path.name} was {health.state} ({health.detail}); created a new one and put "
        f"{back} job(s) back on it from the catalog{failed}"
    )
    if moved is not None:
        detail += f"; the damaged file is kept as {moved.name}"
    return Finding(
        "queue",
        "repaired",
        detail,
        recovered=jobs,
        moved_aside=None if moved is None else str(moved),
    )
