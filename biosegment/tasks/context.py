"""What a running job reports through, and how it learns that it must stop.

A :class:`JobContext` wraps one job's catalog row while some process works on it. The engine's
progress callbacks land in :meth:`JobContext.report`, which writes progress, ETA and message at
most every half second, and a heartbeat thread writes at least every few seconds even while a
long batch computes, so a reader can tell a live job from an orphaned one. :meth:`should_cancel`
answers the engine's cancel callback: true when a person asked to cancel the job, or when this
process is shutting down (then the job is re-queued, not cancelled; see :attr:`stop_reason`).
A handler learns everything else through it: the configuration, its runner's identity, and
(for work split in blocks) :meth:`JobContext.enqueue_block` and :meth:`JobContext.pending_blocks`;
a handler whose job goes on in such blocks returns :data:`CONTINUES`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from biosegment.errors import CancelledError
from biosegment.tasks.joblog import JobLog
from biosegment.tasks.workspace import JobWorkspace

if TYPE_CHECKING:  # pragma: no cover
    from biosegment.catalog.store import Catalog
    from biosegment.config import Config

__all__ = [
    "JobContext",
    "BlockQueue",
    "CONTINUES",
    "REPORT_INTERVAL_S",
    "HEARTBEAT_S",
    "STOP_USER",
    "STOP_SHUTDOWN",
]

#: Progress writes closer together than this are folded into the next one.
REPORT_INTERVAL_S = 0.5
#: The row is touched at least this often while the job runs.
HEARTBEAT_S = 3.0

STOP_USER = "cancelled"
STOP_SHUTDOWN = "shutdown"


class _Continues:
    """Returned by a handler whose job goes on in other tasks (the blocks of a segmentation)."""

    def __repr__(self) -> str:
        return "CONTINUES"


CONTINUES = _Continues()


class BlockQueue(Protocol):
    """Where a job's blocks go; the runner that runs the job provides it.

    The queue, not the handler, decides where a block runs: on the shared queue for any worker,
    or right here after the current task (a runner in immediate mode, as for ``--wait``
    without a daemon).
    """

    def enqueue_block(self, job_id: str, index: int) -> None: ...

    def pending_blocks(self, job_id: str) -> set[int]: ...


class JobContext:
    """One running job: its row, workspace, log, progress reporting and cancel checks."""

    def __init__(
        self,
        catalog: Catalog,
        job: Mapping[str, Any],
        *,
        workspace: JobWorkspace,
        log: JobLog,
        config: Config,
        blocks: BlockQueue,
        stop_event: threading.Event | None = None,
        identity: str = "",
    ):
        self.catalog = catalog
        self.config = config
        self._blocks = blocks
        self.job_id: str = job["id"]
        self.kind: str = job["kind"]
        self.params: dict = dict(job.get("params") or {})
        self.workspace = workspace
        self.log = log
        self.identity = identity
        self._stop_event = stop_event or threading.Event()
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._start_progress = float(job.get("progress") or 0.0)
        self._start_time = time.monotonic()
        self._pending: dict[str, Any] = {}
        self._last_write = 0.0
        self._progress = self._start_progress
        self._heartbeat: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()

    # -- progress --------------------------------------------------------------------------

    @property
    def progress(self) -> float:
        return self._progress

    def report(
        self,
        fraction: float | None = None,
        message: str | None = None,
        *,
        eta: float | None = None,
        force: bool = False,
    ) -> None:
        """Record progress (0..1, never moving backwards) and a message; write when due.

        ``eta`` (seconds left) is the caller's estimate when it has a better one than ours.
        """
        with self._lock:
            if fraction is not None:
                fraction = min(max(float(fraction), 0.0), 1.0)
                if fraction > self._progress:
                    self._progress = fraction
                self._pending["progress"] = self._progress
                estimate = round(float(eta), 1) if eta is not None else self._estimate_eta()
                if estimate is not None:  # no estimate yet: keep showing the last one
                    self._pending["eta"] = estimate
            if message is not None:
                self._pending["message"] = message
            due = force or time.monotonic() - self._last_write >= REPORT_INTERVAL_S
        if due:
            self.flush()

    def _estimate_eta(self) -> float | None:
        done = self._progress - self._start_progress
        if done <= 1e-3:
            return None
        elapsed = time.monotonic() - self._start_time
        return round(elapsed * (1.0 - self._progress) / done, 1)

    def flush(self) -> None:
        """Write pending progress now (or just touch the row, as a heartbeat)."""
        with self._lock:
            fields, self._pending = self._pending, {}
            self._last_write = time.monotonic()
        self.catalog.update_job(self.job_id, **fields)

    def add_metrics(self, epoch_metrics: Mapping[str, Any]) -> None:
        """Append one epoch's metrics to the job row and the log."""
        self.catalog.append_job_metrics(self.job_id, dict(epoch_metrics))
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in epoch_metrics.items()
        )
        self.log.write(f"metrics: {shown}")

    # -- blocks --------------------------------------------------------------------------

    def enqueue_block(self, index: int) -> None:
        """Hand block ``index`` of this job to the queue (run by whoever takes it)."""
        self._blocks.enqueue_block(self.job_id, index)

    def pending_blocks(self) -> set[int]:
        """Indices of this job's blocks waiting on the queue."""
        return self._blocks.pending_blocks(self.job_id)

    # -- stopping --------------------------------------------------------------------------

    def should_cancel(self) -> bool:
        """The engine's cancel callback: a person's cancel, or this process shutting down."""
        if self._stop_event.is_set():
            self.stop_reason = STOP_SHUTDOWN
            return True
        row = self.catalog.job(self.job_id)
        if row.get("cancel_requested") or row.get("state") == "cancelled":
            self.stop_reason = STOP_USER
            return True
        return False

    def check_cancel(self) -> None:
        """Raise :class:`CancelledError` when :meth:`should_cancel` says so."""
        if self.should_cancel():
            raise CancelledError(f"job {self.job_id}: {self.stop_reason}")

    # -- heartbeat -------------------------------------------------------------------------

    def __enter__(self) -> JobContext:
        self._heartbeat_stop.clear()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"heartbeat-{self.job_id}", daemon=True
        )
        self._heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None

    def _beat(self) -> None:
        while not self._heartbeat_stop.wait(HEARTBEAT_S):
            try:
                self.flush()
            except Exception as exc:  # a locked or vanished catalog must not kill the job
                self.log.write(f"heartbeat failed: {exc}", level="WARNING")
