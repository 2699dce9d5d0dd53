"""Jobs: the queue, the service that submits and manages jobs, and the jobs themselves.

:func:`make_huey` builds the data folder's queue (SQLite, or Redis when configured);
:class:`JobService` is how the web UI and the CLI submit, cancel, retry and inspect jobs;
:class:`JobRunner` runs them (in a consumer thread, or in-process for ``--wait`` without a
daemon). The segment and train handlers live in :mod:`biosegment.tasks.segment` and
:mod:`biosegment.tasks.train`.
"""

from __future__ import annotations

from biosegment.tasks.queue import make_huey, queue_tasks
from biosegment.tasks.runner import JobRunner
from biosegment.tasks.service import JobService

__all__ = ["make_huey", "queue_tasks", "JobService", "JobRunner"]
