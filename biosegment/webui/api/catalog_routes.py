"""API views of what the data folder holds: projects, datasets, models, segmentations, problems.

Everything here reads the catalog, which the daemon keeps in step with the folder. The dashboard
document bundles it all with a content ETag, so the dashboard page polls it cheaply and redraws
only when the daemon registered something.
"""

from __future__ import annotations

import numpy as np
from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag

from biosegment.errors import PathEscapeError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import conditional, etag_for, json_conditional
from biosegment.webui.api.schemas import DatasetFilter, DatasetPath, ModelPath, SegmentationPath
from biosegment.webui.context import web_state
from biosegment.webui.held_out import held_out_scores
from biosegment.webui.layers import AXES, LayerRef, plane_shape
from biosegment.webui.object_files import has_object_table
from biosegment.webui.summaries import best_metrics, card_scores, dataset_classes
from biosegment.webui.tiles import encode_png, pyramid

__all__ = ["api", "dashboard_document", "THUMBNAIL_SIZE"]

api = APIBlueprint(
    "catalog_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="catalog", description="What the data folder holds")],
)

THUMBNAIL_SIZE = 160
_RECENT_JOBS = 20


def _dataset_summary(row: dict) -> dict:
    summary = dict(row)
    version = etag_for(row.get("fingerprint"), row.get("updated_at"))
    summary["thumbnail_url"] = (
        f"{API_PREFIX}/datasets/{row['name']}/thumbnail.png?v={version}"
        if row.get("state") == "ok" and row.get("shape")
        else None
    )
    summary["viewer_url"] = f"/datasets/{row['name']}"
    return summary


def _model_summary(catalog, row: dict) -> dict:
    summary = dict(row)
    summary["best_metrics"] = best_metrics(row.get("metrics"))
    summary["page_url"] = f"/models/{row['name']}"
    # what each score was computed on: the validation pixels, and data held out from training
    summary.update(held_out_scores(_card_path(catalog, row)) if row.get("location") else {})
    return summary


def _card_path(catalog, row: dict):
    try:
        return catalog.path_of(row).with_suffix(".json")
    except PathEscapeError:  # a hand-edited catalog: the problems box says so
        return catalog.root / ".no-card"


def dashboard_document(catalog) -> dict:
    """Everything the dashboard shows, as one JSON-ready dict."""
    try:
        recent_jobs = catalog.jobs(limit=_RECENT_JOBS)
    except Exception:  # an old catalog without jobs must not hide the rest of the dashboard
        recent_jobs = []
    return {
        "projects": catalog.projects(),
        # what is gone from the folder is not listed as if it were there: the problems box
        # names it ("no longer in the data folder") until it comes back or a reindex forgets it
        "datasets": [_dataset_summary(row) for row in catalog.datasets(include_missing=False)],
        "models": [_model_summary(catalog, row) for row in catalog.models(include_missing=False)],
        "segmentations": catalog.segmentations(include_missing=False),
        "annotations": catalog.annotations(include_missing=False),
        "problems": catalog.all_problems(),
        "counts": catalog.counts(),
        "jobs": recent_jobs,
    }


@api.get("/dashboard", responses={200: None, 304: None})
def get_dashboard():
    """Projects, datasets, models, segmentations, annotations, problems, counts and recent jobs.

    Answers 304 to a matching ``If-None-Match``: poll it to learn when anything changed.
    """
    return json_conditional(dashboard_document(web_state().catalog()))


@api.get("/projects")
def list_projects():
    """Projects with their classes and default model."""
    return jsonify(web_state().catalog().projects())


@api.get("/problems")
def list_problems():
    """Problems found in setup.json and the data folder: file, key or line, and reason.

    Then every dataset, model, segmentation and annotation in error or missing, with ``kind``,
    ``name`` and ``state`` besides.
    """
    return jsonify(web_state().catalog().all_problems())


@api.get("/datasets")
def list_datasets():
    """Every dataset with shape, voxel size, state and thumbnail URL."""
    return jsonify([_dataset_summary(row) for row in web_state().catalog().datasets()])


@api.get("/datasets/<dataset>", responses={200: None, 404: None})
def get_dataset(path: DatasetPath):
    """One dataset, with its classes, layers and the tile pyramid of each axis."""
    state = web_state()
    catalog = state.catalog()
    row = catalog.dataset(path.dataset)
    document = _dataset_summary(row)
    document["classes"] = dataset_classes(catalog, row)
    layers = [{"kind": "raw", "name": "", "label": "image"}]
    if row.get("ground_truth"):
        layers.append({"kind": "ground_truth", "name": "", "label": "ground truth"})
    layers += [
        {
            "kind": "segmentation",
            "name": s["name"],
            "label": f"segmentation {s['name']}",
            "model": s.get("model"),
            "state": s.get("state"),
            # changes when the files change, so an open viewer fetches new tiles
            "version": s.get("fingerprint") or s.get("updated_at"),
            # an object table to list in the viewer's Objects panel
            "objects": has_object_table(state.root, catalog, path.dataset, s["name"]),
        }
        for s in catalog.segmentations(path.dataset, include_missing=False)
    ]
    if row.get("ground_truth"):
        # where each segmentation and the ground truth disagree (comparison_routes)
        layers += [
            {
                "kind": "difference",
                "name": s["name"],
                "label": f"difference {s['name']} vs ground truth",
                "version": s.get("fingerprint") or s.get("updated_at"),
            }
            for s in catalog.segmentations(path.dataset)
            if s.get("state") == "ok"
        ]
    layers += [
        {
            "kind": "annotation",
            "name": a["name"],
            "label": f"annotation {a['name']}",
            "state": a.get("state"),
            "slices": a.get("slices") or [],
        }
        for a in catalog.annotations(path.dataset, include_missing=False)
    ]
    document["layers"] = layers
    if row.get("shape"):
        document["pyramid"] = {axis: pyramid(*plane_shape(row["shape"], axis)) for axis in AXES}
    return jsonify(document)


@api.get("/datasets/<dataset>/thumbnail.png", responses={200: None, 404: None})
def get_thumbnail(path: DatasetPath):
    """A small PNG of the dataset's middle slice."""
    state = web_state()
    catalog = state.catalog()
    ref = LayerRef(path.dataset, "raw")
    shape = state.layers.shape(catalog, ref)
    version = state.layers.version(catalog, ref)

    def render() -> bytes:
        # the zoom level at which the slice is at most twice the thumbnail, then a plain stride
        level = max(0, int(np.floor(np.log2(max(shape[1:]) / (2 * THUMBNAIL_SIZE)))))
        plane = state.reads.run(
            path.dataset,
            lambda: state.layers.read_plane(catalog, ref, "z", shape[0] // 2, level=level),
        )
        step = max(1, int(np.ceil(max(plane.shape) / THUMBNAIL_SIZE)))
        return encode_png(np.ascontiguousarray(plane[::step, ::step]))

    return conditional(
        etag_for("thumb", path.dataset, version),
        render,
        mimetype="image/png",
        cache_control="private, max-age=3600",
    )


@api.get("/models")
def list_models():
    """Every model with classes, parent and best metrics."""
    catalog = web_state().catalog()
    return jsonify([_model_summary(catalog, row) for row in catalog.models()])


@api.get("/models/<model>", responses={200: None, 404: None})
def get_model(path: ModelPath):
    """One model: architecture, classes, parent, per-epoch metrics and their best values, which
    pixels they were computed on (``validation``), scores on data held out from training that
    its card records (``held_out``: ``data``, ``scores``, ``text`` each; ``held_out_note``) and,
    after a fine-tune from strokes on a dataset with ground truth, its score there on unpainted
    slices (``ground_truth``)."""
    catalog = web_state().catalog()
    row = catalog.model(path.model)
    summary = _model_summary(catalog, row)
    if row.get("location"):
        summary.update(card_scores(_card_path(catalog, row)))
    return jsonify(summary)


@api.get("/segmentations")
def list_segmentations(query: DatasetFilter):
    """Segmentations, optionally of one dataset."""
    return jsonify(web_state().catalog().segmentations(query.dataset))


@api.get("/datasets/<dataset>/segmentations/<name>", responses={200: None, 404: None})
def get_segmentation(path: SegmentationPath):
    """One segmentation of a dataset, with the model that made it."""
    return jsonify(web_state().catalog().segmentation(path.dataset, path.name))
