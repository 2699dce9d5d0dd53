"""API view of a dataset's part of ``setup.json``: read it, and change it safely.

``GET`` gives the dataset's project, voxel size, the project's classes and default model, and
the file's ``version``. ``PUT`` sends that version back with the change: 409 when the file
changed on disk meanwhile (nothing is written), 400 naming the key when the result would not
be a valid setup.json. The file is rewritten atomically, keeping every other key, its order and
the indentation (see :mod:`biosegment.catalog.setup_edit`); the catalog follows at once.
"""

from __future__ import annotations

from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from biosegment.catalog import refresh
from biosegment.catalog.setup_edit import SetupChangedError, edit_setup, setup_for_edit
from biosegment.errors import SetupError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.schemas import ClassSpec, DatasetPath
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError

__all__ = ["api", "SetupChange"]

api = APIBlueprint(
    "setup_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="setup", description="The data folder's setup.json")],
)


class SetupChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(
        description="the version GET gave; the change is refused (409) when the file changed since"
    )
    project: str | None = Field(
        None, max_length=200, description='the dataset\'s project ("" clears it)'
    )
    classes: list[ClassSpec] | None = Field(None, description="the project's classes")
    default_model: str | None = Field(
        None, max_length=200, description='the project\'s default model ("" clears)'
    )
    voxel_size: list[float] | None = Field(None, description="nm per voxel, z y x ([] clears)")


def _describe(data: dict, dataset: str) -> dict:
    entry = next(
        (
            d
            for d in data.get("datasets") or []
            if isinstance(d, dict) and d.get("title") == dataset
        ),
        {},
    )
    project_name = entry.get("project")
    project = (
        next(
            (
                p
                for p in data.get("projects") or []
                if isinstance(p, dict) and p.get("title") == project_name
            ),
            None,
        )
        if project_name
        else None
    )
    return {
        "dataset": {
            "title": dataset,
            "project": project_name or "",
            "voxel_size": entry.get("voxel_size"),
        },
        "project": None
        if project is None
        else {
            "title": project["title"],
            "classes": project.get("classes") or [],
            "default_model": project.get("default_model") or "",
        },
        "projects": [
            p.get("title")
            for p in data.get("projects") or []
            if isinstance(p, dict) and p.get("title")
        ],
    }


@api.get("/datasets/<dataset>/setup", responses={200: None, 400: None, 404: None})
def get_setup(path: DatasetPath):
    """The dataset's project, voxel size, classes and default model as setup.json states them.

    With the file's ``version``, to send back with a change.
    """
    state = web_state()
    state.catalog().dataset(path.dataset)
    data, version = setup_for_edit(state.root)
    return jsonify({"version": version, **_describe(data, path.dataset)})


@api.put("/datasets/<dataset>/setup", responses={200: None, 400: None, 404: None, 409: None})
def put_setup(path: DatasetPath, body: SetupChange):
    """Change the dataset's part of setup.json, unless the file changed since ``version``."""

    state = web_state()
    catalog = state.catalog()
    catalog.dataset(path.dataset)
    change = body.model_dump(exclude_unset=True, exclude={"version"})
    if "classes" in change and change["classes"] is not None:
        change["classes"] = [c.model_dump() for c in body.classes]
        if len({c["id"] for c in change["classes"]}) != len(change["classes"]):
            raise ApiError(400, "class ids must be unique", field="classes")
    try:
        version = edit_setup(state.root, version=body.version, dataset=path.dataset, **change)
    except SetupChangedError as exc:
        raise ApiError(409, f"setup.json {exc.reason}", field="version") from None
    except SetupError as exc:
        where = f" [{exc.where}]" if exc.where else ""
        raise ApiError(400, f"setup.json{where}: {exc.reason}", field=exc.where or "body") from None
    refresh(catalog, state.root)
    data, version = setup_for_edit(state.root)
    return jsonify({"version": version, **_describe(data, path.dataset)})
