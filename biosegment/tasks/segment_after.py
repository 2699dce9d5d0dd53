"""When BioSegment segments a dataset without being asked: the "segment after X" rules.

Two events lead to a segmentation nobody requested by hand: a fine-tune is accepted (its
dataset is segmented with the model it published), and a new dataset appears in a project
that segments automatically (it is segmented with the project's default model; see
:mod:`biosegment.daemon.automation` for when). Each rule makes a :class:`SegmentRequest` here,
with the ``trigger`` stored on the new job, and :func:`submit_segment_request` is the one way
such a request becomes a job, through the :class:`~biosegment.tasks.service.JobService`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service is handed in by whoever submits
    from biosegment.tasks.service import JobService

__all__ = [
    "SegmentRequest",
    "segment_after_accept",
    "segment_new_dataset",
    "submit_segment_request",
    "ACCEPT_TRIGGER",
    "AUTO_TRIGGER",
]

#: The ``trigger`` of a segmentation asked for by an accepted fine-tune.
ACCEPT_TRIGGER = "accept"
#: The ``trigger`` of a new dataset's automatic segmentation.
AUTO_TRIGGER = "auto"


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    """Segment ``dataset`` with ``model``; ``trigger`` says why (stored on the new job)."""

    dataset: str
    model: str
    trigger: str


def segment_after_accept(dataset: str, model: str) -> SegmentRequest:
    """An accepted fine-tune's dataset is segmented with the model it published."""
    return SegmentRequest(dataset, model, trigger=ACCEPT_TRIGGER)


def segment_new_dataset(dataset: str, model: str) -> SegmentRequest:
    """A new dataset is segmented with its project's default model."""
    return SegmentRequest(dataset, model, trigger=AUTO_TRIGGER)


def submit_segment_request(service: JobService, request: SegmentRequest) -> dict:
    """Submit ``request`` as a ``segment`` job with the default options; return its row."""
    return service.submit_segment(request.dataset, request.model, trigger=request.trigger)
