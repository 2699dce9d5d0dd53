"""A Huey consumer that lives inside our own process, with a job runner behind it.

Both ``biosegment run`` and ``biosegment worker`` consume the queue from worker threads started
inside the process, rather than through Huey's ``huey_consumer`` program, so the consumer shares
the process's stop flag, logging and presence lock. :class:`ConsumerHost` starts the threads,
recovers jobs orphaned by a previous crash before taking new work, and stops gracefully: it sets
the stop flag (running jobs checkpoint and go back on the queue at their next batch), then joins
the worker threads. Signals stay with the caller: the embedded consumer installs no handlers.
"""

from __future__ import annotations

import logging
import threading

from huey.consumer import Consumer

from biosegment.catalog import open_catalog
from biosegment.config import Config
from biosegment.tasks.queue import attach_runner, make_huey
from biosegment.tasks.recovery import RecoveryReport, recover_jobs
from biosegment.tasks.runner import JobRunner

__all__ = ["ConsumerHost", "SHUTDOWN_TIMEOUT_S"]

log = logging.getLogger(__name__)

#: How long a graceful stop waits for running jobs to reach their next batch and re-queue.
SHUTDOWN_TIMEOUT_S = 120.0


class _EmbeddedConsumer(Consumer):
    """Huey's consumer minus signal handling, which belongs to the hosting program."""

    def _set_signal_handlers(self) -> None:
        pass


class ConsumerHost:
    """Worker threads consuming the data folder's queue, and the runner that executes jobs.

    :param config: the configuration; ``[queue] workers`` threads are started.
    :param role: ``daemon`` or ``worker``, written into the rows of the jobs it runs.
    :param huey: the queue (default: :func:`biosegment.tasks.make_huey`).
    """

    def __init__(self, config: Config, *, role: str, huey=None):
        self.config = config
        self.huey = huey if huey is not None else make_huey(config)
        self.stop_event = threading.Event()
        self.runner: JobRunner | None = None
        self._consumer: _EmbeddedConsumer | None = None
        self.role = role

    def start(self) -> RecoveryReport:
        """Recover orphaned jobs, then start the worker threads."""
        self.runner = JobRunner(
            self.config, role=self.role, huey=self.huey, stop_event=self.stop_event
        )
        attach_runner(self.huey, self.runner)
        report = self.recover()
        self._consumer = _EmbeddedConsumer(
            self.huey,
            workers=self.config.queue.workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.3,
            max_delay=1.0,
            check_worker_health=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        self._consumer.start()
        return report

    def recover(self) -> RecoveryReport:
        catalog = open_catalog(self.config.data_dir)
        try:
            return recover_jobs(catalog, self.huey, self.config.data_dir)
        finally:
            catalog.close()

    def check_health(self) -> None:
        """Replace worker threads that died (called periodically by the scheduler)."""
        if self._consumer is not None and not self.stop_event.is_set():
            self._consumer.check_worker_health()

    def stop(self) -> None:
        """Ask running jobs to stop at their next batch and wait for the threads to end."""
        self.stop_event.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None
        if self.runner is not None:
            self.runner.close()
            self.runner = None
        try:
            self.huey.storage.close()
        except Exception:  # Redis storages have nothing to close
            pass
