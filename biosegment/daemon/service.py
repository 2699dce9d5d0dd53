"""The daemon: one process that serves one data folder.

:class:`Daemon` holds the data folder's lock and runs, side by side: the watcher that keeps the
catalog in step with the files, the queue consumer that runs jobs, the scheduler for periodic
rescans, job recovery and housekeeping, automatic segmentation of new datasets, and the web
server when the caller hands it a factory for one (``biosegment run`` passes the web UI's
:func:`~biosegment.webui.server.create_server`; the daemon itself never imports the web UI,
which sits above it). ``start`` brings them up in an order where
nothing is missed (recovery before new work, the observer before the first scan); ``stop`` takes
them down so running jobs checkpoint and go back on the queue. Signals are the caller's business:
``biosegment run`` turns SIGINT and SIGTERM into :meth:`Daemon.stop`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from biosegment.catalog import open_catalog, refresh
from biosegment.config import Config
from biosegment.daemon.automation import submit_auto_segmentations
from biosegment.daemon.consumer import ConsumerHost
from biosegment.daemon.housekeeping import clean_state_folder
from biosegment.daemon.scheduler import (
    HOUSEKEEPING_SECONDS,
    RECOVERY_SECONDS,
    PeriodicWork,
    make_scheduler,
)
from biosegment.daemon.watcher import DataFolderWatcher, RefreshOutcome
from biosegment.errors import BioSegmentError
from biosegment.folder_lock import FolderLock, acquire_daemon_lock
from biosegment.tasks.recovery import CRASH_LIMIT
from biosegment.tasks.runner import import_engine
from biosegment.tasks.service import JobService

__all__ = ["Daemon", "WebServer", "ServerFactory"]

log = logging.getLogger(__name__)

_HEALTH_SECONDS = 10.0


class WebServer(Protocol):
    """What the daemon needs of a web server: its address, a loop to run, and a way to stop."""

    url: str

    def serve_forever(self) -> None: ...

    def close(self) -> None: ...


#: ``factory(config, jobs=...)``: binds a web server for the data folder (raises OSError when
#: the port is taken); the jobs service is the daemon's, so the UI submits to the same queue.
ServerFactory = Callable[..., WebServer]


class Daemon:
    """Serve one data folder: watch it, run its jobs, and (optionally) serve the web UI.

    :param config: the configuration; ``config.data_dir`` must exist.
    :param server_factory: builds the web server; None runs without one.
    """

    def __init__(self, config: Config, *, server_factory: ServerFactory | None = None):
        self.config = config
        self.root = config.data_dir
        self.server_factory = server_factory
        self.url: str | None = None
        self.jobs: JobService | None = None
        self.watcher: DataFolderWatcher | None = None
        self.consumer: ConsumerHost | None = None
        self._lock: FolderLock | None = None
        self._scheduler = None
        self._server: WebServer | None = None
        self._server_thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Daemon:
        """Take the lock and start everything; raises DaemonAlreadyRunning for a served folder."""
        if self._started:
            return self
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = acquire_daemon_lock(self.root, role="daemon")
        self._started = True
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        log.info("daemon serving %s%s", self.root, f" at {self.url}" if self.url else "")
        return self

    def _start_parts(self) -> None:
        # The engine (torch) is imported here, before the watcher, job and web threads start:
        # two threads importing parts of a half-imported package can fail with an ImportError.
        import_engine()
        self.consumer = ConsumerHost(self.config, role="daemon")
        self.jobs = JobService(self.config, huey=self.consumer.huey)
        self.watcher = DataFolderWatcher(
            self.root,
            refresh=lambda catalog: refresh(
                catalog, self.root, forget_after=self.config.watch.forget_after_seconds
            ),
            open_catalog=lambda: open_catalog(self.root),
            on_refreshed=self._after_refresh,
            poll=self.config.watch.poll,
            settle_seconds=self.config.watch.settle_seconds,
            forget_after=self.config.watch.forget_after_seconds,
        )
        self.watcher.start(initial_scan=True)
        report = self.consumer.start()
        if report:
            log.info("resumed %d interrupted job(s)", len(report.requeued) + len(report.enqueued))
        if report.failed:
            log.warning(
                "failed %d job(s) whose runner stopped under them %d times, not retried: %s",
                len(report.failed),
                CRASH_LIMIT,
                ", ".join(report.failed),
            )
        self._scheduler = make_scheduler(
            [
                PeriodicWork(
                    "rescan", self.config.watch.rescan_minutes * 60.0, self.watcher.request_rescan
                ),
                PeriodicWork("recover-jobs", RECOVERY_SECONDS, self.consumer.recover),
                PeriodicWork("worker-health", _HEALTH_SECONDS, self.consumer.check_health),
                PeriodicWork(
                    "housekeeping", HOUSEKEEPING_SECONDS, self._housekeeping, first_after=60.0
                ),
            ]
        )
        self._scheduler.start()
        if self.server_factory is not None:
            self._start_web_server(self.server_factory)

    def _start_web_server(self, factory: ServerFactory) -> None:
        try:
            self._server = factory(self.config, jobs=self.jobs)
        except OSError as exc:
            where = f"{self.config.server.host}:{self.config.server.port}"
            raise BioSegmentError(
                f"cannot serve the web UI on {where} ({exc.strerror or exc}); another program "
                "may use that port: set [server] port in biosegment.toml"
            ) from None
        self.url = self._server.url
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, name="biosegment-web", daemon=True
        )
        self._server_thread.start()
        self._lock.update({**self._lock.owner, "url": self.url})

    def stop(self) -> None:
        """Stop everything; running jobs are checkpointed and re-queued. Safe to call twice."""
        with self._stop_lock:
            if self._stopped.is_set() or not self._started:
                self._stopped.set()
                return
            log.info("daemon stopping")
            if self.consumer is not None:
                # First: running jobs see the flag at their next batch while the rest stops.
                self.consumer.stop_event.set()
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
            if self._server is not None:
                try:
                    self._server.close()
                except Exception:
                    log.exception("web server did not close cleanly")
                if self._server_thread is not None:
                    self._server_thread.join(timeout=10)
            if self.watcher is not None:
                self.watcher.stop()
            if self.consumer is not None:
                self.consumer.stop()
            if self.jobs is not None:
                self.jobs.close()
            if self._lock is not None:
                self._lock.release(remove=False)
            self._stopped.set()
            log.info("daemon stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has finished; True when it has."""
        return self._stopped.wait(timeout)

    @property
    def running(self) -> bool:
        return self._started and not self._stopped.is_set()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- periodic and event-driven work ----------------------------------------------------

    def _after_refresh(self, outcome: RefreshOutcome) -> None:
        if outcome.error:
            log.warning("catalog refresh failed: %s", outcome.error)
        if outcome.new_datasets:
            log.info("new datasets: %s", ", ".join(outcome.new_datasets))
            if self.jobs is not None:
                submit_auto_segmentations(
                    self.jobs,
                    self.jobs.catalog,
                    outcome.new_datasets,
                    config_switch=self.config.automation.auto_segment,
                )

    def _housekeeping(self) -> None:
        catalog = open_catalog(self.root)
        try:
            clean_state_folder(
                catalog, self.config.state_dir, keep_days=self.config.automation.keep_job_logs_days
            )
        finally:
            catalog.close()
