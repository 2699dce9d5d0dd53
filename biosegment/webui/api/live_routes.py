"""API views of a running fine-tune: its live preview, its per-step curve, accept and discard.

``GET /jobs/<id>/live`` says whether the job has a snapshot of its weights yet, at which step,
and the latest validation figure with what it was measured on; ``GET /jobs/<id>/live/tiles/...``
serves that snapshot's prediction of an XY slice as the same class-id PNG tiles as a
segmentation's (predicted in this process, see :mod:`biosegment.webui.live_preview`).
``GET /jobs/<id>/steps`` is the loss of every optimizer step so far. ``POST .../accept`` asks the
job to stop now, publish its best weights under a name and segment the dataset with them;
``POST .../discard`` cancels it and removes everything it made.
"""

from __future__ import annotations

from flask import jsonify
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

__all__ = ["api"]

api = APIBlueprint(
    "live_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="jobs", description="Segmentation and training jobs")],
)

_ACTIVE = ("queued", "running")
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


class AcceptRequest(_Strict):
    name: str | None = Field(
        None,
        description="name of the published model (default: the name the job was given)",
        json_schema_extra=NAME_SCHEMA,
    )


def _train_job(job_id: str) -> dict:
    try:
        job = web_state().catalog().job(job_id)
    except NotFoundError as exc:
        raise ApiError(404, str(exc), field="job_id") from None
    if job["kind"] != "train":
        raise ApiError(
            409, f"job {job_id} is a {job['kind']} job; only train jobs learn live", field="job_id"
        )
    return job


def _workspace(job_id: str):
    from biosegment.tasks.workspace import JobWorkspace

    return JobWorkspace.of(web_state().config, job_id)


def _live_folder(job_id: str):
    from biosegment.tasks.train_live import live_folder

    return live_folder(_workspace(job_id))


@api.get("/jobs/<job_id>/live", responses={200: None, 404: None, 409: None})
def get_live(path: JobPath):
    """A train job's live preview: snapshot step and time, and the latest validation figure."""
    import time

    from biosegment.engine.live_snapshot import read_live_status, snapshot_version

    job = _train_job(path.job_id)
    folder = _live_folder(path.job_id)
    status = read_live_status(folder) if job["state"] in _ACTIVE else None
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
                "training_pixels": status.get("training_pixels"),
            }
        )
    return json_conditional(document)


@api.get(
    "/jobs/<job_id>/live/tiles/z/<int:index>/<int:level>/<int:row>/<int:col>.png",
    responses={200: _PNG_RESPONSE, 304: None, 404: None, 409: None},
)
def get_live_tile(path: LiveTilePath, query: LiveTileQuery):
    """One PNG tile of class ids: the running job's latest weights' prediction of slice
    ``index``."""
    from biosegment.engine.live_snapshot import snapshot_version

    state = web_state()
    catalog = state.catalog()
    job = _train_job(path.job_id)
    folder = _live_folder(path.job_id)
    version = snapshot_version(folder) if job["state"] in _ACTIVE else None
    if version is None:
        state.live.forget(path.job_id)
        raise ApiError(
            404, f"job {path.job_id} has no live snapshot (yet, or any more)", field="job_id"
        )
    dataset = catalog.require_usable("dataset", job["params"]["dataset"])
    shape = dataset.get("shape") or []
    if len(shape) != 3:
        raise ApiError(409, f"dataset {dataset['name']!r} has no known shape", field="dataset")
    if path.index >= shape[0]:
        raise ApiError(404, f"slice {path.index} is outside 0..{shape[0] - 1}", field="index")
    address = TileAddress(path.level, path.row, path.col)
    check_address(shape[1], shape[2], address)
    etag = etag_for("live", path.job_id, version, path.index, address.level, path.row, path.col)

    def render() -> bytes:
        volume_path = catalog.path_of(dataset)

        def predict():
            return state.live.plane(path.job_id, folder, version, volume_path, dataset, path.index)

        plane = state.reads.run(dataset["name"], predict)
        step = address.step
        tile = cut_tile(plane.labels[::step, ::step], address)
        return encode_png(tile)

    return conditional(etag, render, mimetype="image/png", cache_control="private, no-cache")


@api.get("/jobs/<job_id>/steps", responses={200: None, 404: None, 409: None})
def get_steps(path: JobPath, query: StepsQuery):
    """The training loss of every optimizer step so far (``after``: only later ones)."""
    from biosegment.engine.live_snapshot import read_steps
    from biosegment.tasks.train_live import steps_file

    job = _train_job(path.job_id)
    steps = read_steps(steps_file(_workspace(path.job_id)), after=query.after)
    return jsonify({"job": job["id"], "state": job["state"], "steps": steps})


def _models_in_use(catalog, job_id: str) -> set[str]:
    names = {m["name"] for m in catalog.models()}
    for state in _ACTIVE:
        for other in catalog.jobs_in_state(state):
            if other["kind"] == "train" and other["id"] != job_id:
                names.add((other.get("params") or {}).get("name"))
    return names


@api.post("/jobs/<job_id>/accept", responses={202: None, 400: None, 404: None, 409: None})
def post_accept(path: JobPath, body: AcceptRequest):
    """Stop training now, keep the best weights, publish them as ``name`` and segment the
    dataset with the new model."""
    from biosegment.folder_names import MODEL_SUFFIX, MODELS_DIR
    from biosegment.tasks.train_live import read_control, request_accept

    state = web_state()
    catalog = state.catalog()
    job = _train_job(path.job_id)
    if job["state"] != "running" or job.get("cancel_requested"):
        raise ApiError(
            409,
            f"job {job['id']} is {job['state']}; only a running training can be accepted",
            field="job_id",
        )
    workspace = _workspace(job["id"])
    earlier = read_control(workspace)
    if earlier is not None:
        raise ApiError(409, f"job {job['id']} was already {earlier['action']}ed", field="job_id")
    name = check_new_name(body.name, field="name") if body.name else job["params"]["name"]
    models_dir = state.root / MODELS_DIR
    on_disk = (
        {p.name.removesuffix(MODEL_SUFFIX) for p in models_dir.iterdir()}
        if models_dir.is_dir()
        else set()
    )
    if name in _models_in_use(catalog, job["id"]) | on_disk:
        raise ApiError(
            400, f"model {name!r} already exists or is being trained; choose another", field="name"
        )
    request_accept(workspace, name)
    return jsonify({**catalog.job(job["id"]), "accepted_name": name}), 202


@api.post("/jobs/<job_id>/discard", responses={200: None, 404: None, 409: None})
def post_discard(path: JobPath):
    """Cancel a training and remove what it made: no model, no snapshot, no working files."""
    from biosegment.tasks.train_live import discard_files, request_discard

    state = web_state()
    catalog = state.catalog()
    job = _train_job(path.job_id)
    if job["state"] == "succeeded":
        raise ApiError(
            409,
            f"job {job['id']} has finished and published its model; delete the model instead",
            field="job_id",
        )
    workspace = _workspace(job["id"])
    if job["state"] in _ACTIVE:
        request_discard(workspace)
        job = catalog.request_cancel(job["id"])
    if job["state"] in ("cancelled", "failed"):
        # Nobody works on it any more (a queued job is cancelled at once): clean up here.
        discard_files(workspace)
    state.live.forget(job["id"])
    return jsonify(job)
