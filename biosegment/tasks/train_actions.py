"""What a person may do with a train job: watch its live preview and step curve, accept, discard.

These are the train job's person-facing actions; the web UI and the CLI reach them through
:class:`~biosegment.tasks.service.JobService` only. Each takes the catalog and the job's
:class:`~biosegment.tasks.workspace.JobWorkspace` and reads what the running job wrote there (see
:mod:`biosegment.tasks.train_live`), or writes a request the job reads. Nothing here removes a
file: a discarded job's files are removed by the job as it stops, or by the queue's
``discard_job`` task once nobody works on it. Accept and discard are first recorded in the job's
catalog row, in one transaction each (:meth:`~biosegment.catalog.jobs.JobStore.record_accept`,
:meth:`~biosegment.catalog.jobs.JobStore.record_discard`): of an accept and a discard sent together
only the first takes effect and the other is refused, and only then is the request written for
the job to read.

Errors: :class:`~biosegment.errors.NotFoundError` for an unknown job,
:class:`~biosegment.errors.StateError` (at ``job_id``) for a job that is not a train job or is in
the wrong state for the action.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from biosegment.catalog.jobs import ACTIVE_JOB_STATES
from biosegment.catalog.store import Catalog
from biosegment.engine.steps_pages import read_steps_page
from biosegment.errors import StateError
from biosegment.tasks.train_live import read_control, request_accept, request_discard
from biosegment.tasks.workspace import JobWorkspace

__all__ = [
    "LiveSnapshot",
    "train_job",
    "live_status",
    "live_snapshot",
    "training_steps",
    "acceptable_job",
    "accept",
    "discard",
    "ACTIVE_STATES",
]

#: States of a job that somebody still works on (or will).
ACTIVE_STATES = ACTIVE_JOB_STATES


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The latest weights a running train job saved, for predicting a live preview."""

    job: dict  #: the job row
    folder: Path  #: the snapshot's folder (``model.pytorch``, ``model.json``, ``live.json``)
    version: str  #: changes whenever the weights are replaced


def train_job(catalog: Catalog, job_id: str) -> dict:
    """The row of train job ``job_id``."""
    job = catalog.job(job_id)
    if job["kind"] != "train":
        raise StateError(
            f"job {job_id} is a {job['kind']} job; only train jobs learn live", where="job_id"
        )
    return job


def live_snapshot(catalog: Catalog, workspace: JobWorkspace) -> LiveSnapshot | None:
    """The running job's latest snapshot; None before the first one or once the job ended."""
    from biosegment.engine.live_snapshot import snapshot_version  # the module imports torch

    job = train_job(catalog, workspace.job_id)
    if job["state"] not in ACTIVE_STATES:
        return None
    version = snapshot_version(workspace.live_dir)
    return None if version is None else LiveSnapshot(job, workspace.live_dir, version)


def live_status(catalog: Catalog, workspace: JobWorkspace) -> dict:
    """The job's live preview: whether there is a snapshot, its step, epoch and age, the
    validation figure of the snapshot's weights with what it was measured on, and (for a
    fine-tune) how they compare with the base model on the same pixels."""
    from biosegment.engine.live_snapshot import read_live_status, snapshot_version

    job = train_job(catalog, workspace.job_id)
    folder = workspace.live_dir
    status = read_live_status(folder) if job["state"] in ACTIVE_STATES else None
    version = snapshot_version(folder) if status else None
    document = {
        "job": job["id"],
        "state": job["state"],
        "dataset": (job.get("params") or {}).get("dataset"),
        "available": version is not None,
        "version": version,
    }
    if status and version:
        document.update(
            {
                "step": status.get("step"),
                "epoch": status.get("epoch"),
                "elapsed_s": status.get("elapsed_s"),
                "age_s": round(max(0.0, time.time() - float(status.get("written_at") or 0)), 1),
                "validation": status.get("validation"),
                "comparison": status.get("comparison"),
                "training_pixels": status.get("training_pixels"),
            }
        )
    return document


def training_steps(
    catalog: Catalog, workspace: JobWorkspace, *, after: int = 0, cursor: int | None = None
) -> dict:
    """One page of the job's training loss per optimizer step: the steps after step ``after``
    (at most :data:`~biosegment.engine.steps_pages.STEPS_PER_PAGE`), ``more`` when there are
    further ones, and the ``cursor`` to ask for them with (see :func:`read_steps_page`)."""
    job = train_job(catalog, workspace.job_id)
    page = read_steps_page(workspace.steps_file, after=after, cursor=cursor)
    return {
        "job": job["id"],
        "state": job["state"],
        "steps": page.steps,
        "more": page.more,
        "cursor": page.cursor,
    }


def acceptable_job(catalog: Catalog, workspace: JobWorkspace) -> dict:
    """The row of a running train job that nobody accepted, discarded or cancelled yet."""
    job = train_job(catalog, workspace.job_id)
    if job.get("decision"):
        raise StateError(f"job {job['id']} was already {job['decision']}", where="job_id")
    if job["state"] != "running" or job.get("cancel_requested"):
        raise StateError(
            f"job {job['id']} is {job['state']}; only a running training can be accepted",
            where="job_id",
        )
    earlier = read_control(workspace)
    if earlier is not None:
        raise StateError(f"job {job['id']} was already {earlier['action']}ed", where="job_id")
    return job


def accept(catalog: Catalog, workspace: JobWorkspace, name: str) -> dict:
    """Ask a running job (see :func:`acceptable_job`) to stop now and publish its best weights
    as model ``name``, which it holds from now on; return its row."""
    acceptable_job(catalog, workspace)
    job = catalog.record_accept(workspace.job_id, name)
    request_accept(workspace, name)
    return job


def discard(catalog: Catalog, workspace: JobWorkspace) -> tuple[dict, bool]:
    """Cancel a train job and mark its work for removal.

    Return its row and whether nobody works on it any more (so the caller must have its files
    removed: the queue's ``discard_job`` task); a running job removes them as it stops.
    """
    train_job(catalog, workspace.job_id)
    job = catalog.record_discard(workspace.job_id)
    # The request is written before the cancel, so the job finds it when it stops.
    request_discard(workspace)
    if job["state"] in ACTIVE_STATES:
        job = catalog.request_cancel(job["id"])
    return job, job["state"] in ("cancelled", "failed")
