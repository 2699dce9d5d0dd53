"""Pick up jobs that lost their runner, so nothing stays "running" forever.

A job whose process was killed (``kill -9``, a power cut, a worker machine that vanished) stays
``running`` in the catalog, and its queue message is gone: Huey removes a message when a worker
takes it. :func:`recover_jobs` finds such jobs by their runner's presence lock (see
:mod:`biosegment.folder_lock`), puts them back to ``queued`` and onto the queue; the handlers
then resume from the training checkpoint or the finished z-blocks. Jobs that are ``queued`` in
the catalog but have had no message on the queue for a while (a crash between the two writes)
are enqueued again. A job whose cancel was requested before its runner died is marked ``cancelled``.

Each orphan found counts as a crash of the job (its ``crashes`` column): a job whose runner died
under it :data:`CRASH_LIMIT` times is failed with that reason instead of being queued again, as it
may well be what stops its process (a training too big for the memory, say), and running it again
would stop the daemon and every job beside it again. A shutdown that interrupts a job cleanly is
no crash.

Running this twice, or in two processes at once, is harmless: a runner only claims a job that is
still ``queued``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from biosegment.errors import InputError
from biosegment.folder_lock import runner_alive
from biosegment.tasks.joblog import JobLog
from biosegment.tasks.queue import pending_job_messages, queue_tasks

if TYPE_CHECKING:  # pragma: no cover
    from huey import Huey

    from biosegment.catalog.store import Catalog

__all__ = ["recover_jobs", "RecoveryReport", "QUEUED_GRACE_S", "CRASH_LIMIT"]

log = logging.getLogger(__name__)

#: A queued job is only re-enqueued when its row is older than this: a JobService puts the
#: message on the queue a moment after creating the row, and must not be raced.
QUEUED_GRACE_S = 30.0
#: A job found running with a dead runner this many times is failed, not queued again.
CRASH_LIMIT = 2


def _age_seconds(timestamp: str | None) -> float:
    if not timestamp:
        return float("inf")
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds()


def _note_in_log(catalog: Catalog, job: dict, text: str) -> None:
    """Append ``text`` to the job's log, where it has one (best effort: the row says it too)."""
    if not job.get("log_path"):
        return
    try:
        JobLog(catalog.path_of(job, "log_path")).write(text, level="ERROR")
    except (OSError, InputError) as exc:
        log.warning("could not write to the log of job %s: %s", job["id"], exc)


@dataclass(slots=True)
class RecoveryReport:
    requeued: list[str] = field(default_factory=list)  #: orphaned running jobs, queued again
    enqueued: list[str] = field(default_factory=list)  #: queued jobs missing from the queue
    cancelled: list[str] = field(default_factory=list)  #: orphans whose cancel was requested
    failed: list[str] = field(default_factory=list)  #: orphans that reached the crash limit

    def __bool__(self) -> bool:
        return bool(self.requeued or self.enqueued or self.cancelled or self.failed)


def recover_jobs(
    catalog: Catalog, huey: Huey, root: Path, *, queued_grace_s: float = QUEUED_GRACE_S
) -> RecoveryReport:
    """Re-queue orphaned and lost jobs of the data folder ``root``; see the module docstring.

    ``queued_grace_s``: how old a queued job's row must be before a missing queue message is
    replaced (0 when the queue is known to be empty or new, as after a repair).
    """
    report = RecoveryReport()
    tasks = queue_tasks(huey)
    pending = {args[0] for kind, args in pending_job_messages(huey) if kind == "run_job" and args}
    for job in catalog.jobs_in_state("running"):
        if runner_alive(root, job.get("worker")):
            continue
        if job.get("cancel_requested"):
            catalog.update_job(
                job["id"],
                state="cancelled",
                eta=None,
                message="cancelled (its runner stopped before it could)",
            )
            report.cancelled.append(job["id"])
            continue
        crashes = int(job.get("crashes") or 0) + 1
        runner = job.get("worker") or "unknown"
        if crashes >= CRASH_LIMIT:
            reason = (
                f"its runner stopped {crashes} times while running it (last: {runner}); not "
                "retried, as the job itself may be what stops its process (more memory than the "
                "machine has?); its last message was: "
                f"{job.get('message') or 'none'}"
            )
            catalog.update_job(job["id"], state="failed", eta=None, crashes=crashes, message=reason)
            _note_in_log(catalog, job, f"failed: {reason}")
            report.failed.append(job["id"])
            continue
        catalog.update_job(
            job["id"],
            state="queued",
            eta=None,
            crashes=crashes,
            message=f"its runner ({runner}) stopped; resuming from the last checkpoint",
        )
        if job["id"] not in pending:
            tasks.run_job(job["id"])
            pending.add(job["id"])
        report.requeued.append(job["id"])
    for job in catalog.jobs_in_state("queued"):
        if job["id"] not in pending and _age_seconds(job.get("updated_at")) >= queued_grace_s:
            tasks.run_job(job["id"])
            pending.add(job["id"])
            report.enqueued.append(job["id"])
    if report:
        log.info(
            "recovered jobs: requeued %s, enqueued %s, cancelled %s, failed %s",
            report.requeued,
            report.enqueued,
            report.cancelled,
            report.failed,
        )
    return report
