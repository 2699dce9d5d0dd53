"""The job queue: one Huey instance per data folder, and the task types it carries.

``make_huey`` picks the backend from the config: ``SqliteHuey`` in ``.biosegment/queue.db`` by
default, ``RedisHuey`` when ``[queue] url`` names a Redis server (workers on other machines then
share the queue). A queue message carries only a job id (and a block index for split
segmentations); everything else about the job lives in its catalog row, so any process that sees
the data folder can run it. The queue knows nothing of how a job runs: a process that consumes
it attaches a :class:`TaskTarget` (the job runner) with :func:`attach_runner`, so enqueuing
(the web UI, the CLI) never pays for importing torch.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Protocol

from huey import Huey, RedisHuey, SqliteHuey

from biosegment.config import Config
from biosegment.folder_names import QUEUE_FILE

__all__ = [
    "make_huey",
    "QueueTasks",
    "TaskTarget",
    "queue_tasks",
    "attach_runner",
    "pending_job_messages",
    "pending_blocks",
]


class TaskWrapper(Protocol):
    """A task Huey registered (``huey.task()(fn)``): calling it enqueues the task."""

    task_class: type

    def __call__(self, *args: object) -> object: ...


class TaskTarget(Protocol):
    """What executes the queue's tasks in a consuming process (a job runner)."""

    def run_job(self, job_id: str) -> object: ...

    def run_block(self, job_id: str, index: int) -> None: ...

    def discard_job(self, job_id: str) -> None: ...


@dataclass(slots=True)
class QueueTasks:
    """The task wrappers registered on one Huey instance; calling one enqueues it."""

    run_job: TaskWrapper  #: run_job(job_id): claim a queued job and run it (or split it)
    segment_block: TaskWrapper  #: segment_block(job_id, index): one z-block of a split segmentation
    #: discard_job(job_id): remove the files of a stopped job a person discarded
    discard_job: TaskWrapper
    runner: TaskTarget | None = None

    def current_runner(self) -> TaskTarget:
        """The runner attached to execute tasks in this process."""
        if self.runner is None:
            raise RuntimeError(
                "this process consumes the queue without a job runner; "
                "attach one with biosegment.tasks.queue.attach_runner"
            )
        return self.runner


_TASKS: weakref.WeakKeyDictionary[Huey, QueueTasks] = weakref.WeakKeyDictionary()


def make_huey(config: Config) -> Huey:
    """Return the data folder's queue with BioSegment's tasks registered on it.

    The queue keeps no results (the catalog row is the result) and Huey's own retries stay off:
    a job interrupted by a crash is re-queued by recovery, which knows whether it may resume.
    """
    if config.queue.url:
        huey: Huey = RedisHuey(config.queue.name, url=config.queue.url, results=False, utc=True)
    else:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(
            config.queue.name,
            filename=str(config.state_dir / QUEUE_FILE),
            results=False,
            utc=True,
            timeout=30,
        )
    _register_tasks(huey)
    return huey


def _register_tasks(huey: Huey) -> None:
    holder: list[QueueTasks] = []

    def run_job(job_id: str) -> None:
        holder[0].current_runner().run_job(job_id)

    def segment_block(job_id: str, index: int) -> None:
        holder[0].current_runner().run_block(job_id, int(index))

    def discard_job(job_id: str) -> None:
        holder[0].current_runner().discard_job(job_id)

    tasks = QueueTasks(
        run_job=huey.task(name="run_job")(run_job),
        segment_block=huey.task(name="segment_block")(segment_block),
        discard_job=huey.task(name="discard_job")(discard_job),
    )
    holder.append(tasks)
    _TASKS[huey] = tasks


def queue_tasks(huey: Huey) -> QueueTasks:
    """The tasks :func:`make_huey` registered on ``huey``."""
    try:
        return _TASKS[huey]
    except KeyError:
        raise ValueError("this Huey instance was not made by biosegment.tasks.make_huey") from None


def attach_runner(huey: Huey, runner: TaskTarget) -> None:
    """Make ``runner`` (with its identity and stop flag) execute the tasks this process consumes."""
    queue_tasks(huey).runner = runner


def pending_job_messages(huey: Huey) -> list[tuple[str, tuple]]:
    """``(task name, args)`` of every message still waiting in the queue."""
    names = {
        queue_tasks(huey).run_job.task_class.__name__: "run_job",
        queue_tasks(huey).segment_block.task_class.__name__: "segment_block",
    }
    out = []
    for task in huey.pending():
        kind = names.get(type(task).__name__)
        if kind is not None:
            out.append((kind, tuple(task.args or ())))
    return out


def pending_blocks(huey: Huey, job_id: str) -> set[int]:
    """Indices of the blocks of job ``job_id`` still waiting in the queue."""
    return {
        int(args[1])
        for kind, args in pending_job_messages(huey)
        if kind == "segment_block" and len(args) == 2 and args[0] == job_id
    }
