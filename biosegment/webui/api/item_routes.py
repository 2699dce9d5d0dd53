"""API views that rename segmentations and models, move them to the trash, and bring anything
in the trash back.

Everything here goes through the job service, which knows what queued and running jobs use:
a model that is a project's default or a job's model, or a segmentation a job is writing, is
refused with 409 naming what uses it, as is a name already taken (compared without case).
Deleting moves the files to ``.biosegment-trash/`` in the data folder; the answer is the trash
entry, and ``POST /trash/<entry>/restore`` moves it back (409 when its name was taken again).
Annotations are renamed and deleted beside their other views (``annotation_routes``).
"""

from __future__ import annotations

from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag

from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.schemas import ModelPath, NewName, SegmentationPath, TrashPath
from biosegment.webui.context import web_state
from biosegment.webui.names import check_new_name

__all__ = ["api"]

api = APIBlueprint(
    "items_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="trash", description="Rename, delete to the trash, restore")],
)


@api.post(
    "/datasets/<dataset>/segmentations/<name>/rename",
    responses={200: None, 400: None, 404: None, 409: None},
)
def post_segmentation_rename(path: SegmentationPath, body: NewName):
    """Rename a segmentation; 409 when the name is taken or a job is writing it."""
    state = web_state()
    state.catalog().segmentation(path.dataset, path.name)
    name = check_new_name(body.name, field="name")
    return jsonify(state.jobs().rename_item("segmentation", path.name, name, dataset=path.dataset))


@api.delete("/datasets/<dataset>/segmentations/<name>", responses={200: None, 404: None, 409: None})
def delete_segmentation(path: SegmentationPath):
    """Move a segmentation to the trash; the answer is the trash entry."""
    state = web_state()
    state.catalog().segmentation(path.dataset, path.name)
    return jsonify(state.jobs().delete_item("segmentation", path.name, dataset=path.dataset))


@api.post("/models/<model>/rename", responses={200: None, 400: None, 404: None, 409: None})
def post_model_rename(path: ModelPath, body: NewName):
    """Rename a model; its card and the cards naming it (as parent or maker) follow. 409 when
    the name is taken, or the model is a project's default or a queued or running job's."""
    state = web_state()
    state.catalog().model(path.model)
    name = check_new_name(body.name, field="name")
    return jsonify(state.jobs().rename_item("model", path.model, name))


@api.delete("/models/<model>", responses={200: None, 404: None, 409: None})
def delete_model(path: ModelPath):
    """Move a model to the trash; 409 when a project has it as default or a job uses it."""
    state = web_state()
    state.catalog().model(path.model)
    return jsonify(state.jobs().delete_item("model", path.model))


@api.get("/trash", responses={200: None})
def list_trash():
    """What the trash holds, newest first: ``id``, ``item`` (kind, dataset, name), ``moved``
    (paths relative to the data folder), ``when`` and ``why``."""
    return jsonify(web_state().jobs().trash())


@api.post("/trash/<entry>/restore", responses={200: None, 404: None, 409: None})
def post_trash_restore(path: TrashPath):
    """Move a trash entry back to its place and register it again (``entry``, ``item``); 409
    naming the clash when its name or place was taken meanwhile."""
    return jsonify(web_state().jobs().restore_item(path.entry))
