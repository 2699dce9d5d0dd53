"""The daemon's clock: periodic rescans, job recovery and housekeeping, on APScheduler 3.

Events miss things: inotify does not see writes made by another machine on a network mount, and
a burst of events can overflow the kernel's queue. A full rescan every ``[watch]
rescan_minutes`` catches up. Job recovery runs every half minute, so a worker that died while the
daemon stays up has its job picked up again. Housekeeping (old job folders, caches) runs hourly.
Each periodic job runs alone (``max_instances=1``) and a run that was missed while the machine
slept is merged into one (``coalesce``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

__all__ = ["PeriodicWork", "make_scheduler", "RECOVERY_SECONDS", "HOUSEKEEPING_SECONDS"]

log = logging.getLogger(__name__)

RECOVERY_SECONDS = 30.0
HOUSEKEEPING_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class PeriodicWork:
    """One thing to do every ``seconds``; ``first_after`` delays the first run."""

    name: str
    seconds: float
    action: Callable[[], object]
    first_after: float | None = None


def _guarded(work: PeriodicWork) -> Callable[[], None]:
    def run() -> None:
        try:
            work.action()
        except Exception:  # one failed run is logged; the next one tries again
            log.exception("periodic %s failed", work.name)

    return run


def make_scheduler(works: list[PeriodicWork]) -> BackgroundScheduler:
    """A background scheduler (not started) with ``works`` as interval jobs."""

    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    now = datetime.now(UTC)
    for work in works:
        first = now + timedelta(
            seconds=work.first_after if work.first_after is not None else work.seconds
        )
        scheduler.add_job(
            _guarded(work),
            "interval",
            seconds=work.seconds,
            id=work.name,
            name=work.name,
            next_run_time=first,
        )
    return scheduler
