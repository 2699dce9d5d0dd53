"""CLI commands that serve a data folder: ``run`` (the daemon, with UI and window) and ``worker``.

Both run until SIGINT or SIGTERM (or, for ``run`` with a window, until the person closes the
window: ``run`` started the window, so closing it stops BioSegment) and then stop cleanly:
running jobs are checkpointed and go back on the queue, to resume at the next start or on
another worker. Logs go to the data folder's log file and to standard error.
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from dataclasses import replace

import click

from biosegment.catalog import open_catalog
from biosegment.cli.context import AppContext, pass_app
from biosegment.cli.root import main
from biosegment.folder_names import QUEUE_FILE

__all__ = ["run", "worker", "configure_logging"]

log = logging.getLogger(__name__)

_DESKTOP_MODULE = "biosegment.desktop"
_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(config, *, to_stderr: bool = True) -> None:
    """Send BioSegment's (and Huey's) log records to the log file and, optionally, stderr."""
    level = getattr(logging, config.log.level.upper(), logging.INFO)
    formatter = logging.Formatter(_LOG_FORMAT)
    handlers: list[logging.Handler] = []
    try:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(config.log_file, encoding="utf-8"))
    except OSError as exc:
        click.echo(f"warning: cannot write the log file {config.log_file}: {exc}", err=True)
    if to_stderr:
        handlers.append(logging.StreamHandler())
    # Huey narrates every task at INFO; its warnings and errors are what matter here.
    for name, name_level in (("biosegment", level), ("huey", max(level, logging.WARNING))):
        logger = logging.getLogger(name)
        logger.setLevel(name_level)
        for handler in handlers:
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.propagate = False


class _StopOnSignal:
    """SIGINT/SIGTERM set ``requested``; a second signal stops waiting for jobs to checkpoint."""

    def __init__(self):
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopOnSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt
        self.requested.set()

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def wait(self) -> None:
        # Short waits keep the main thread responsive to signals.
        while not self.requested.wait(0.5):
            pass


def _unfinished_jobs(config) -> int:
    """Jobs queued or running in the data folder: those the queue keeps for the next start."""
    try:
        with open_catalog(config.data_dir) as catalog:
            return len(catalog.jobs_in_state("queued")) + len(catalog.jobs_in_state("running"))
    except Exception:  # the count only informs the log line: never let it block the stop
        log.exception("could not count the unfinished jobs")
        return 0


def _open_window(url: str, stopper: _StopOnSignal, config) -> bool:
    """Open the desktop window if that part is installed; False when it is not.

    ``run`` started the window, so the person closing it stops BioSegment (logged, with the
    jobs that wait for the next start).
    """
    try:
        desktop = importlib.import_module(_DESKTOP_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and _DESKTOP_MODULE.startswith(exc.name):
            return False
        raise

    def window_closed() -> None:
        log.info(
            "window closed: stopping BioSegment; %d job(s) kept for the next start",
            _unfinished_jobs(config),
        )
        stopper.requested.set()

    desktop.open_ui(url, on_close=window_closed, service=False, stop=stopper.requested)
    return True


@main.command()
@click.option(
    "--headless",
    is_flag=True,
    help="Serve without opening a window: print the URL and run until SIGINT or "
    "SIGTERM (for servers and services).",
)
@pass_app
def run(app: AppContext, headless: bool) -> None:
    """Start BioSegment on the data folder: watcher, job queue, web UI and window.

    New datasets are registered as they land in EM/, jobs run in this process, and the web
    UI opens in a window (or the browser). Stop with Ctrl-C or by closing the window; running
    jobs are checkpointed and resume at the next start.
    """
    from biosegment.daemon.service import Daemon
    from biosegment.webui.server import create_server

    config = app.config
    app.require_root()
    configure_logging(config)
    daemon = Daemon(config, server_factory=create_server)
    with _StopOnSignal() as stopper:
        daemon.start()
        try:
            if daemon.url:
                click.echo(f"BioSegment serves {config.data_dir} at {daemon.url}")
            else:
                click.echo(f"BioSegment serves {config.data_dir} (web UI not installed)")
            if not headless and daemon.url:
                _open_window(daemon.url, stopper, config)
            stopper.wait()
            click.echo("stopping: running jobs are checkpointed and re-queued ...", err=True)
        finally:
            daemon.stop()
    click.echo("stopped")


@main.command()
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Worker threads (default: [queue] workers from the config).",
)
@pass_app
def worker(app: AppContext, threads: int | None) -> None:
    """Run jobs from the data folder's queue, without watcher or web UI.

    Start one on every machine that mounts the same data folder and shares the queue
    ([queue] url = "redis://..."); a large segmentation is split into z-blocks that all
    workers share. Stop with Ctrl-C or SIGTERM; running jobs go back on the queue.
    """
    from biosegment.daemon.consumer import ConsumerHost
    from biosegment.daemon.scheduler import RECOVERY_SECONDS, PeriodicWork, make_scheduler

    config = app.config
    app.require_root()
    if threads is not None:
        config = replace(config, queue=replace(config.queue, workers=threads))
    configure_logging(config)
    host = ConsumerHost(config, role="worker")
    with _StopOnSignal() as stopper:
        host.start()
        scheduler = make_scheduler(
            [
                PeriodicWork("recover-jobs", RECOVERY_SECONDS, host.recover),
                PeriodicWork("worker-health", 10.0, host.check_health),
            ]
        )
        scheduler.start()
        try:
            queue = config.queue.url or str(config.state_dir / QUEUE_FILE)
            click.echo(
                f"BioSegment worker ({config.queue.workers} thread(s)) on {queue} for "
                f"{config.data_dir}"
            )
            stopper.wait()
            click.echo("stopping: running jobs are checkpointed and re-queued ...", err=True)
        finally:
            scheduler.shutdown(wait=False)
            host.stop()
    click.echo("stopped")
