"""Run jobs: claim a job row, run its kind's handler, and record how it ended.

A :class:`JobRunner` lives in every process that runs jobs: the daemon's consumer threads, each
``biosegment worker``, and a CLI that runs a job in-process. It holds a presence lock (so others
can tell when it died), claims a queued job in the catalog before working on it (a job that is no
longer queued, say cancelled or already taken, is skipped), and turns the handler's outcome into
the job's final state: ``succeeded`` with a result, ``failed`` with the reason, ``cancelled``, or
back to ``queued`` (and onto the queue again) when this process is shutting down, so the job
resumes from its checkpoint or last finished block wherever it runs next. A handler whose job asks
for more jobs (:class:`~biosegment.tasks.follow_ups.Finished`) has them submitted here, through
the job service, before its job is recorded as succeeded.

The runner is the :class:`~biosegment.tasks.context.BlockQueue` of the jobs it runs, and it
decides where their blocks go, as Huey's immediate mode does for tasks: a runner that consumes
the shared queue puts them there for every worker; an immediate runner (a CLI running a job
without a daemon, or any runner without a queue) runs them itself right after the job's task.
Handlers never make that choice.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from biosegment import engine
from biosegment.catalog import open_catalog
from biosegment.catalog.store import Catalog
from biosegment.config import Config
from biosegment.errors import BioSegmentError, CancelledError, NotFoundError
from biosegment.folder_lock import PresenceLock
from biosegment.tasks import queue
from biosegment.tasks.context import CONTINUES, STOP_SHUTDOWN, JobContext
from biosegment.tasks.follow_ups import Finished, submit_follow_ups
from biosegment.tasks.joblog import JobLog
from biosegment.tasks.segment import run_segment, run_segment_block
from biosegment.tasks.service import JobService
from biosegment.tasks.train import run_train
from biosegment.tasks.train_live import discard_if_requested
from biosegment.tasks.workspace import JobWorkspace

if TYPE_CHECKING:  # pragma: no cover
    from huey import Huey

__all__ = ["JobRunner", "JOB_HANDLERS", "JOB_DISCARDS", "import_engine"]

log = logging.getLogger(__name__)

#: Kind -> handler(ctx). The handlers import the engine (and torch) only when they run.
JOB_HANDLERS: dict[str, Callable[[JobContext], object]] = {
    "segment": run_segment,
    "train": run_train,
}
#: Kind -> what removes the files of a stopped job that a person discarded (when one asked).
JOB_DISCARDS: dict[str, Callable[[JobWorkspace], bool]] = {
    "train": discard_if_requested,
}


def import_engine() -> None:
    """Import the engine package whole, once, in the calling thread.

    Jobs and catalog probes import the engine lazily (torch is slow to import). When two
    threads first import different parts of it at the same time, one can meet the package
    half-imported and fail; a process that runs such threads imports it first, here.
    """
    engine.import_all()


class JobRunner:
    """Runs jobs of one data folder in this process.

    :param config: the configuration (data folder, engine device, ...).
    :param role: ``daemon``, ``worker`` or ``cli``: part of the identity written to job rows.
    :param huey: the queue, to put interrupted work back and to hand out z-blocks; None runs
        everything here and re-queues nothing (a CLI without a queue).
    :param stop_event: set when this process shuts down: running jobs stop at the next batch.
    :param immediate: run a job's blocks here, after the job's own task, instead of putting
        them on the queue; interrupted work still goes back to the queue.
    """

    def __init__(
        self,
        config: Config,
        *,
        role: str = "worker",
        huey: Huey | None = None,
        stop_event: threading.Event | None = None,
        immediate: bool = False,
    ):
        self.config = config
        self.huey = huey
        self.immediate = immediate or huey is None
        self.stop_event = stop_event or threading.Event()
        self._here: deque[tuple[str, int]] = deque()  # blocks an immediate runner runs next
        import_engine()  # in this thread, before any job thread imports a part of it
        self._presence = PresenceLock(config.data_dir, role).acquire()
        self.identity = self._presence.identity

    def close(self) -> None:
        self._presence.release()

    # -- queue entry points ----------------------------------------------------------------

    def run_job(self, job_id: str) -> dict | None:
        """Claim and run a queued job; return its row as the task left it.

        An immediate runner also runs the job's blocks before returning, so the row is final.
        """
        row = self._claim_and_run(job_id)
        if not self._here:
            return row
        while self._here:
            self.run_block(*self._here.popleft())
        catalog = open_catalog(self.config.data_dir)
        try:
            return catalog.job(job_id)
        finally:
            catalog.close()

    def run_block(self, job_id: str, index: int) -> None:
        """Run one z-block of a split segmentation (and assemble it if it was the last)."""
        catalog = open_catalog(self.config.data_dir)
        try:
            try:
                row = catalog.job(job_id)
            except NotFoundError:
                log.warning("block %s of unknown job %s skipped", index, job_id)
                return
            if row["state"] != "running":
                return  # cancelled, failed, finished, or re-queued for a fresh plan
            row = catalog.update_job(job_id, worker=self.identity)
            self._execute(
                catalog,
                row,
                lambda ctx: run_segment_block(ctx, index),
                on_shutdown=lambda ctx: self._block_interrupted(catalog, ctx, index),
                label=f"block {index}",
            )
        finally:
            catalog.close()

    def discard_job(self, job_id: str) -> None:
        """Remove the files of a stopped job that a person discarded (a running one removes its
        own as it stops, and a job nobody discarded keeps them)."""
        catalog = open_catalog(self.config.data_dir)
        try:
            try:
                row = catalog.job(job_id)
            except NotFoundError:
                return
        finally:
            catalog.close()
        discard = JOB_DISCARDS.get(row["kind"])
        if row["state"] in ("cancelled", "failed") and discard is not None:
            if discard(JobWorkspace.of(self.config, job_id)):
                log.info("job %s discarded: its files are removed", job_id)

    # -- the block queue of the jobs it runs ------------------------------------------------

    def enqueue_block(self, job_id: str, index: int) -> None:
        """Put a block on the queue, or (immediate) run it here after the current task."""
        if self.immediate:
            if (job_id, index) not in self._here:
                self._here.append((job_id, index))
            return
        queue.queue_tasks(self.huey).segment_block(job_id, index)

    def pending_blocks(self, job_id: str) -> set[int]:
        if self.immediate:
            return {index for owner, index in self._here if owner == job_id}
        return queue.pending_blocks(self.huey, job_id)

    def _give_back(self, job_id: str) -> bool:
        """Put a job that this process will not run onto the queue, for another runner."""
        if self.huey is None:
            return False
        queue.queue_tasks(self.huey).run_job(job_id)
        return True

    # -- the work --------------------------------------------------------------------------

    def _claim_and_run(self, job_id: str) -> dict | None:
        catalog = open_catalog(self.config.data_dir)
        try:
            try:
                row = catalog.job(job_id)
            except NotFoundError:
                log.warning("job %s is not in the catalog; queue message dropped", job_id)
                return None
            if row["state"] != "queued":
                # Another runner has it, or it was cancelled or finished meanwhile.
                return row
            if self.stop_event.is_set():
                # This process is shutting down (perhaps the message is the one it just sent
                # for a job it interrupted): leave the job queued and the message on the queue
                # for another runner or the next start, instead of starting work it would stop.
                self._give_back(job_id)
                return row
            claimed = catalog.try_claim_job(job_id, self.identity)
            if claimed is None:
                return catalog.job(job_id)  # another runner took it meanwhile
            row = claimed
            if row["state"] != "running":
                return row
            handler = JOB_HANDLERS.get(row["kind"])
            if handler is None:
                return catalog.update_job(
                    job_id, state="failed", message=f"unknown job kind {row['kind']!r}"
                )
            self._execute(
                catalog,
                row,
                handler,
                on_shutdown=lambda ctx: self._job_interrupted(catalog, ctx),
                label=row["kind"],
            )
            return catalog.job(job_id)
        finally:
            catalog.close()

    def _execute(
        self,
        catalog: Catalog,
        row: dict,
        work: Callable[[JobContext], object],
        *,
        on_shutdown: Callable[[JobContext], None],
        label: str,
    ) -> None:
        job_id = row["id"]
        workspace = JobWorkspace.of(self.config, job_id).create()
        job_log = JobLog(workspace.log_file)
        if row.get("log_path") != workspace.log_location:
            catalog.update_job(job_id, log_path=workspace.log_location)
        with (
            job_log,
            JobContext(
                catalog,
                row,
                workspace=workspace,
                log=job_log,
                config=self.config,
                blocks=self,
                stop_event=self.stop_event,
                identity=self.identity,
            ) as ctx,
        ):
            job_log.write(f"{label}: attempt {row.get('attempts')} on {self.identity}")
            ctx.report(None, f"{label} started on {self.identity}", force=True)
            try:
                outcome = work(ctx)
            except CancelledError:
                if ctx.stop_reason == STOP_SHUTDOWN:
                    ctx.log.write("interrupted by shutdown; the work done so far is kept")
                    on_shutdown(ctx)
                else:
                    job_log.write("cancelled")
                    self._finish(catalog, job_id, state="cancelled", eta=None, message="cancelled")
            except KeyboardInterrupt:
                ctx.log.write("interrupted (Ctrl-C); the work done so far is kept")
                on_shutdown(ctx)
                raise
            except BioSegmentError as exc:
                job_log.write(f"failed: {exc}", level="ERROR")
                self._finish(catalog, job_id, state="failed", message=str(exc))
            except Exception as exc:  # a bug or a broken file: the job fails, the worker lives
                job_log.write(traceback.format_exc(), level="ERROR")
                self._finish(
                    catalog, job_id, state="failed", message=f"{type(exc).__name__}: {exc}"
                )
            else:
                if outcome is CONTINUES:
                    ctx.flush()
                    return
                ctx.flush()
                if isinstance(outcome, Finished):
                    outcome = {**outcome.result, **self._submit(outcome, job_log)}
                job_log.write("succeeded")
                self._finish(
                    catalog,
                    job_id,
                    state="succeeded",
                    progress=1.0,
                    eta=0.0,
                    message="done",
                    result=outcome,
                )

    def _submit(self, finished: Finished, job_log: JobLog) -> dict:
        """Submit the jobs a finished job asks for; return what its result says of them."""
        if not finished.follow_ups:
            return {}
        service = JobService(self.config, huey=self.huey)
        try:
            return submit_follow_ups(service, finished.follow_ups, job_log)
        finally:
            service.close()

    def _job_interrupted(self, catalog: Catalog, ctx: JobContext) -> None:
        catalog.update_job(
            ctx.job_id,
            state="queued",
            eta=None,
            message="interrupted by shutdown; resumes where it stopped",
        )
        if not self._give_back(ctx.job_id):
            ctx.log.write("no queue here: the next daemon or worker start resumes it")

    def _block_interrupted(self, catalog: Catalog, ctx: JobContext, index: int) -> None:
        if self.immediate:
            # The job's blocks run nowhere but here: the whole job goes back on the queue and
            # is planned again, from its finished blocks, wherever it runs next.
            self._here.clear()
            self._job_interrupted(catalog, ctx)
            return
        # Other blocks may still be running elsewhere: only this block goes back on the queue;
        # if no runner is left, recovery re-plans the job from its finished blocks.
        catalog.update_job(ctx.job_id, message=f"block {index} interrupted; re-queued")
        queue.queue_tasks(self.huey).segment_block(ctx.job_id, index)

    @staticmethod
    def _finish(catalog: Catalog, job_id: str, **fields: object) -> None:
        if catalog.job(job_id)["state"] in ("succeeded", "failed", "cancelled"):
            return  # another block already settled the job
        catalog.update_job(job_id, **fields)
