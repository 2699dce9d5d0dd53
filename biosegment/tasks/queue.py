"""The job queue: one Huey instance per data folder, and the two task types it carries.

``make_huey`` picks the backend from the config: ``SqliteHuey`` in ``.biosegment/queue.db`` by
default, ``RedisHuey`` when ``[queue] url`` names a Redis server (workers on other machines then
share the queue). A queue message carries only a job id (and a block index for split
segmentations); everything else about the job lives in its catalog row, so any process that sees
the data folder can run it. Task bodies are imported lazily so that enqueuing (the web UI, the
CLI) never pays for importing torch.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from huey import Huey, RedisHuey, SqliteHuey

from biosegment.config import Config

if TYPE_CHECKING:  # pragma: no cover
    from biosegment.tasks.runner import JobRunner

__all__ = ["make_huey", "QueueTasks", "queue_tasks", "attach_runner", "pending_job_messages",
           "QUEUE_FILE"]

QUEUE_FILE = "queue.db"


@dataclass(slots=True)
class QueueTasks:
    """The task wrappers registered on one Huey instance; calling one enqueues it."""

    run_job: Callable        #: run_job(job_id): claim a queued job and run it (or split it)
    segment_block: Callable  #: segment_block(job_id, index): one z-block of a split segmentation
    runner_factory: Callable[[], "JobRunner"]
    runner: "JobRunner | None" = None

    def current_runner(self) -> "JobRunner":
        """The runner that executes tasks in this process (made on first use when none attached)."""
        if self.runner is None:
            self.runner = self.runner_factory()
        return self.runner


_TASKS: "weakref.WeakKeyDictionary[Huey, QueueTasks]" = weakref.WeakKeyDictionary()


def make_huey(config: Config) -> Huey:
    """Return the data folder's queue with BioSegment's tasks registered on it.

    The queue keeps no results (the catalog row is the result) and Huey's own retries stay off:
    a job interrupted by a crash is re-queued by recovery, which knows whether it may resume.
    """
    if config.queue.url:
        huey: Huey = RedisHuey(config.queue.name, url=config.queue.url, results=False, utc=True)
    else:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(config.queue.name, filename=str(config.state_dir / QUEUE_FILE),
                          results=False, utc=True, timeout=30)
    _register_tasks(huey, config)
    return huey


def _register_tasks(huey: Huey, config: Config) -> None:
    holder: list[QueueTasks] = []

    def run_job(job_id: str) -> None:
        holder[0].current_runner().run_queued(job_id)

    def segment_block(job_id: str, index: int) -> None:
        holder[0].current_runner().run_block(job_id, int(index))

    def make_runner():
        from biosegment.tasks.runner import JobRunner
        return JobRunner(config, role="worker", huey=huey)

    tasks = QueueTasks(run_job=huey.task(name="run_job")(run_job),
                       segment_block=huey.task(name="segment_block")(segment_block),
                       runner_factory=make_runner)
    holder.append(tasks)
    _TASKS[huey] = tasks


def queue_tasks(huey: Huey) -> QueueTasks:
    """The tasks :func:`make_huey` registered on ``huey``."""
    try:
        return _TASKS[huey]
    except KeyError:
        raise ValueError("this Huey instance was not made by biosegment.tasks.make_huey") from None


def attach_runner(huey: Huey, runner: "JobRunner") -> None:
    """Make ``runner`` (with its identity and stop flag) execute the tasks this process consumes."""
    queue_tasks(huey).runner = runner


def pending_job_messages(huey: Huey) -> list[tuple[str, tuple]]:
    """``(task name, args)`` of every message still waiting in the queue."""
    names = {queue_tasks(huey).run_job.task_class.__name__: "run_job",
             queue_tasks(huey).segment_block.task_class.__name__: "segment_block"}
    out = []
    for task in huey.pending():
        kind = names.get(type(task).__name__)
        if kind is not None:
            out.append((kind, tuple(task.args or ())))
    return out
