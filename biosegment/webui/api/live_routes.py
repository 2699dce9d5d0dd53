"""API views of a running fine-tune: its live preview, its per-step curve, accept and discard.

``GET /jobs/<id>/live`` says whether the job has a snapshot of its weights yet, at which step,
and the latest validation figure with what it was measured on; ``GET /jobs/<id>/live/tiles/...``
serves that snapshot's prediction of an XY slice as the same class-id PNG tiles as a
segmentation's (predicted in this process, see :mod:`biosegment.webui.live_preview`).
``GET /jobs/<id>/steps`` is the loss of every optimizer step so far, a bounded page at a time. ``POST .../accept`` asks the
job to stop now, publish its best weights under a name and segment the dataset with them;
``POST .../discard`` cancels it and has everything it made removed. Every job action goes
through the job service (:class:`~biosegment.tasks.service.JobService`); only the preview's
prediction runs here.
"""

from __future__ import annotations

from flask import jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import Field

from biosegment.errors import NotFoundError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import conditional, etag_for, json_conditional
from biosegment.webui.api.schemas import JobPath, _Strict
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError
from biosegment.webui.names import NAME_SCHEMA, check_new_name
from biosegment.webui.tiles import TileAddress, check_address, cut_tile, encode_png

__all__ = ["api", "live_source", "live_plane"]

api = APIBlueprint(
    "live_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="jobs", description="Segmentation and training jobs")],
)

_PNG_RESPONSE = {
    "description": "a greyscale PNG tile of class ids",
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
}


class LiveTilePath(_Strict):
    job_id: str
    index: int = Field(ge=0, description="slice index (XY slices only)")
    level: int = Field(ge=0, description="zoom level: 0 is full resolution, each level halves")
    row: int = Field(ge=0)
    col: int = Field(ge=0)


class LiveTileQuery(_Strict):
    v: str = Field("", description="cache-busting version token; ignored by the server")


class StepsQuery(_Strict):
    after: int = Field(0, ge=0, description="only steps after this one")
    cursor: int | None = Field(
        None,
        ge=0,
        description="the cursor of the previous answer, sent with after set to the last step "
        "it gave: the next page is read from there",
    )


class AcceptRequest(_Strict):
    name: str | None = Field(
        None,
        description="name of the published model (default: the name the job was given)",
        json_schema_extra=NAME_SCHEMA,
    )


def _jobs():
    return web_state().jobs()


def _asking(action, *args, **kwargs):
    """Call a job service action; an unknown job is a 404 naming the ``job_id`` field."""
    try:
        return action(*args, **kwargs)
    except NotFoundError as exc:
        raise ApiError(404, str(exc), field="job_id") from None


def live_source(job_id: str, index: int):
    """The running job's latest snapshot and its dataset, with slice ``index`` checked to be in
    it (404 naming the field at fault otherwise)."""
    state = web_state()
    snapshot = _asking(_jobs().live_snapshot, job_id)
    if snapshot is None:
        state.live.forget(job_id)
        raise ApiError(404, f"job {job_id} has no live snapshot (yet, or any more)", field="job_id")
    dataset = state.catalog().require_usable("dataset", snapshot.job["params"]["dataset"])
    shape = dataset.get("shape") or []
    if len(shape) != 3:
        raise ApiError(409, f"dataset {dataset['name']!r} has no known shape", field="dataset")
    if index >= shape[0]:
        raise ApiError(404, f"slice {index} is outside 0..{shape[0] - 1}", field="index")
    return snapshot, dataset


def live_plane(job_id: str, index: int, snapshot, dataset: dict):
    """The live layer's slice ``index`` (a :class:`~biosegment.webui.live_preview.LivePlane`):
    predicted in the job's own thread, never abandoned (see webui.live_preview); it may come
    from an earlier snapshot while the latest one's prediction runs, and says which."""
    state = web_state()
    return state.live.plane(
        job_id,
        snapshot.folder,
        snapshot.version,
        state.catalog().path_of(dataset),
        dataset,
        index,
    )


@api.get("/jobs/<job_id>/live", responses={200: None, 404: None, 409: None})
def get_live(path: JobPath):
    """A train job's live preview: snapshot step and time, and the latest validation figure."""
    return json_conditional(_asking(_jobs().live_status, path.job_id))


@api.get(
    "/jobs/<job_id>/live/tiles/z/<int:index>/<int:level>/<int:row>/<int:col>.png",
    responses={200: _PNG_RESPONSE, 304: None, 404: None, 409: None, 503: None},
)
def get_live_tile(path: LiveTilePath, query: LiveTileQuery):
    """One PNG tile of class ids: the running job's latest weights' prediction of slice
    ``index``."""
    snapshot, dataset = live_source(path.job_id, path.index)
    shape = dataset["shape"]
    address = TileAddress(path.level, path.row, path.col)
    check_address(shape[1], shape[2], address)

    def tile_etag(version: str) -> str:
        return etag_for(
            "live", path.job_id, version, path.index, address.level, address.row, address.col
        )

    cache_control = "private, no-cache"
    latest = tile_etag(snapshot.version)
    if latest in request.if_none_match:
        return conditional(latest, bytes, mimetype="image/png", cache_control=cache_control)
    # Predicted in the job's own thread, never abandoned (see webui.live_preview); the plane may
    # come from an earlier snapshot while the latest one's prediction runs, and says which.
    plane = live_plane(path.job_id, path.index, snapshot, dataset)

    def render() -> bytes:
        step = address.step
        return encode_png(cut_tile(plane.labels[::step, ::step], address))

    return conditional(
        tile_etag(plane.version), render, mimetype="image/png", cache_control=cache_control
    )


@api.get("/jobs/<job_id>/steps", responses={200: None, 404: None, 409: None})
def get_steps(path: JobPath, query: StepsQuery):
    """The training loss of optimizer steps after step ``after``, at most 5000 per answer:
    ``more`` is true while there are further steps, to be asked for with ``after`` set to the
    last step given and ``cursor`` to the answer's ``cursor``."""
    return jsonify(
        _asking(_jobs().training_steps, path.job_id, after=query.after, cursor=query.cursor)
    )


@api.post("/jobs/<job_id>/accept", responses={202: None, 400: None, 404: None, 409: None})
def post_accept(path: JobPath, body: AcceptRequest):
    """Stop training now, keep the best weights, publish them as ``name`` and segment the
    dataset with the new model."""
    name = check_new_name(body.name, field="name") if body.name else None
    return jsonify(_asking(_jobs().accept_training, path.job_id, name=name)), 202


@api.post("/jobs/<job_id>/discard", responses={200: None, 404: None, 409: None})
def post_discard(path: JobPath):
    """Cancel a training and remove what it made: no model, no snapshot, no working files."""
    job = _asking(_jobs().discard_training, path.job_id)
    web_state().live.forget(job["id"])
    return jsonify(job)
