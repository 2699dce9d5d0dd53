"""Jobs a finished job asks for: its handler returns them, the runner submits them.

A handler never builds a job service of its own. When its job calls for another (an accepted
fine-tune asks for a segmentation of its dataset with the new model, a rule of
:mod:`biosegment.tasks.segment_after`), it returns a :class:`Finished` with the job's result
and the :class:`SegmentRequest` follow-ups; the runner
submits each through :class:`~biosegment.tasks.service.JobService` with
:func:`submit_follow_ups` before it records the job as succeeded, and the job's result names the
jobs it queued. A follow-up that cannot be queued is logged and named in the result; the job
itself still succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from biosegment.tasks.joblog import JobLog
from biosegment.tasks.segment_after import (
    SegmentRequest,
    segment_after_accept,
    submit_segment_request,
)
from biosegment.tasks.service import JobService

__all__ = ["SegmentRequest", "Finished", "segment_after_accept", "submit_follow_ups"]


@dataclass(frozen=True, slots=True)
class Finished:
    """What a handler returns when its job asks for more jobs: its result and those jobs."""

    result: dict
    follow_ups: tuple[SegmentRequest, ...] = field(default=())


def submit_follow_ups(
    service: JobService, follow_ups: tuple[SegmentRequest, ...], log: JobLog
) -> dict:
    """Submit each follow-up through ``service``; return what the job's result says of them."""
    said: dict = {}
    for request in follow_ups:
        try:
            job = submit_segment_request(service, request)
        except Exception as exc:  # the job's own work is done; this one can be started by hand
            log.write(
                f"the segmentation with {request.model} could not be queued: {exc}",
                level="WARNING",
            )
            said["segmentation_error"] = str(exc)
            continue
        log.write(f"queued job {job['id']}: segment {request.dataset} with {request.model}")
        said.update(segmentation_job=job["id"], segmentation=job["params"]["name"])
    return said
