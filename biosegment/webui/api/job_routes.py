"""API views of jobs: list and follow them, submit segmentation and training, cancel, retry, log.

Job rows are read from the catalog (where workers report progress, ETA and per-epoch metrics);
everything that changes a job goes through the job service, never the queue database. Names of
datasets, models and annotations are checked against the catalog first, so a typo is a 404 that
names the field rather than a job that fails later. A segmentation identical to one queued or
running (a double click, a retry clicked twice) answers 200 with that job instead of 202 with a
new one; a model name that another job holds is refused with 409 naming the job.
"""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from biosegment.errors import NotFoundError
from biosegment.tasks.service import SCRATCH
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.schemas import (
    SEGMENT_OPTION_NAMES,
    TRAIN_OPTION_NAMES,
    JobPath,
    JobsQuery,
    SegmentRequest,
    TrainRequest,
)
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError
from biosegment.webui.names import check_new_name

__all__ = ["api"]

api = APIBlueprint(
    "jobs_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="jobs", description="Segmentation and training jobs")],
)


def _require(lookup, *args, field: str) -> dict:
    try:
        return lookup(*args)
    except NotFoundError as exc:
        raise ApiError(404, str(exc), field=field) from None


@api.get("/jobs", responses={200: None, 400: None})
def list_jobs(query: JobsQuery):
    """Jobs, newest first, optionally filtered by state and kind."""
    catalog = web_state().catalog()
    return jsonify(catalog.jobs(state=query.state, kind=query.kind, limit=query.limit))


@api.get("/jobs/<job_id>", responses={200: None, 404: None})
def get_job(path: JobPath):
    """One job: state, progress, ETA, message, per-epoch metrics and result."""
    return jsonify(web_state().catalog().job(path.job_id))


@api.get(
    "/jobs/<job_id>/log",
    responses={
        200: {"description": "the job's log as text", "content": {"text/plain": {}}},
        404: None,
    },
)
def get_job_log(path: JobPath):
    """The job's log, as plain text."""
    state = web_state()
    state.catalog().job(path.job_id)
    text = state.jobs().job_log(path.job_id) or ""
    return Response(text, mimetype="text/plain", headers={"Cache-Control": "no-store"})


@api.post("/jobs/segment", responses={200: None, 202: None, 400: None, 404: None, 503: None})
def post_segment(body: SegmentRequest):
    """Segment a dataset with a model; the new segmentation appears when the job succeeds.

    While an identical segmentation is queued or running, the answer is that job (200)."""
    state = web_state()
    catalog = state.catalog()
    _require(catalog.dataset, body.dataset, field="dataset")
    _require(catalog.model, body.model, field="model")
    options = {"trigger": "ui"}
    if body.name:
        options["name"] = check_new_name(body.name, field="name")
    settings = {name: getattr(body, name) for name in SEGMENT_OPTION_NAMES}
    job, created = state.jobs().find_or_submit_segment(
        body.dataset,
        body.model,
        **options,
        **{key: value for key, value in settings.items() if value is not None},
    )
    return jsonify(job), 202 if created else 200


@api.post("/jobs/train", responses={202: None, 400: None, 404: None, 409: None, 503: None})
def post_train(body: TrainRequest):
    """Train a model from an annotation (or the dataset's ground truth), optionally fine-tuning."""
    state = web_state()
    catalog = state.catalog()
    _require(catalog.dataset, body.dataset, field="dataset")
    if body.annotation:
        _require(catalog.annotation, body.dataset, body.annotation, field="annotation")
    if body.base_model and body.base_model != SCRATCH:
        _require(catalog.model, body.base_model, field="base_model")
    options = {"trigger": "ui"}
    if body.name:
        options["name"] = check_new_name(body.name, field="name")
    settings = {name: getattr(body, name) for name in TRAIN_OPTION_NAMES}
    job = state.jobs().submit_train(
        annotation=body.annotation,
        dataset=body.dataset,
        base_model=body.base_model,
        **options,
        **{key: value for key, value in settings.items() if value is not None},
    )
    return jsonify(job), 202


@api.post("/jobs/<job_id>/cancel", responses={200: None, 404: None, 409: None})
def post_cancel(path: JobPath):
    """Cancel a queued or running job (a running one stops at its next batch)."""
    state = web_state()
    state.catalog().job(path.job_id)
    return jsonify(state.jobs().cancel(path.job_id))


@api.post("/jobs/<job_id>/retry", responses={200: None, 202: None, 400: None, 404: None, 409: None})
def post_retry(path: JobPath):
    """Run a failed or cancelled job again with the same parameters (checked as a new request
    is: 409 when another job holds its model name; 200 with the identical segmentation that is
    queued or running)."""
    state = web_state()
    state.catalog().job(path.job_id)
    job, created = state.jobs().find_or_retry(path.job_id)
    return jsonify(job), 202 if created else 200
