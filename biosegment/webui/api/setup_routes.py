"""API view of a dataset's part of ``setup.json``: read it, and change it safely.

``GET`` gives the dataset's project (the one it names, else the default project it joins),
voxel size, the classes and default model of that project and of every other one, and the
file's ``version``. ``PUT`` sends that version back with the keys to change; the others stay as
they are (see :mod:`biosegment.catalog.setup_change`). 409 when the file changed on disk
meanwhile (nothing is written); 400 naming the field when the change names a project the file
does not list or a model the data folder does not hold, or when the result would not be a valid
setup.json. The file is rewritten atomically, keeping every other key, its order and the
indentation (see :mod:`biosegment.catalog.setup_edit`); the catalog follows at once.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from biosegment.catalog import refresh
from biosegment.catalog.setup_change import declared_project, find_titled, project_titles
from biosegment.catalog.setup_edit import SetupChangedError, edit_setup, setup_for_edit
from biosegment.errors import InputError, NotFoundError, SetupError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.schemas import DatasetPath, ProjectClassSpec
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
        None,
        max_length=200,
        description="the dataset's project, one setup.json lists, or a new one when classes "
        'or default_model come with it ("" clears it)',
    )
    classes: list[ProjectClassSpec] | None = Field(
        None, description="the project's classes (each keeps its other keys)"
    )
    default_model: str | None = Field(
        None, max_length=200, description='the project\'s default model, a usable model ("" clears)'
    )
    voxel_size: list[float] | None = Field(None, description="nm per voxel, z y x ([] clears)")


def _project_setup(project: dict) -> dict:
    return {
        "title": project["title"],
        "classes": project.get("classes") or [],
        "default_model": project.get("default_model") or "",
    }


def _describe(data: dict, dataset: str) -> dict:
    entry = find_titled(data.get("datasets"), dataset) or {}
    project_name = declared_project(data, dataset)
    project = find_titled(data.get("projects"), project_name) if project_name else None
    return {
        "dataset": {
            "title": dataset,
            "project": project_name or "",
            "voxel_size": entry.get("voxel_size"),
        },
        "project": None if project is None else _project_setup(project),
        "projects": project_titles(data),
        # every project's classes and default model, so that a person who picks another
        # project sees (and keeps) what it holds
        "project_setups": [
            _project_setup(p)
            for title in project_titles(data)
            if (p := find_titled(data.get("projects"), title)) is not None
        ],
    }


def _usable_model(catalog) -> Callable[[str], None]:
    def check(name: str) -> None:
        try:
            catalog.require_usable("model", name, where="default_model")
        except NotFoundError:
            raise InputError(
                f"default_model {name!r}: the data folder has no model of that name",
                where="default_model",
            ) from None

    return check


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
    row = catalog.dataset(path.dataset)
    change = body.model_dump(exclude_unset=True, exclude={"version"})
    if "classes" in change and change["classes"] is not None:
        change["classes"] = [c.model_dump(exclude_none=True) for c in body.classes]
        if len({c["id"] for c in change["classes"]}) != len(change["classes"]):
            raise ApiError(400, "class ids must be unique", field="classes")
    try:
        version = edit_setup(
            state.root,
            version=body.version,
            dataset=path.dataset,
            found_at=row.get("location"),
            check_model=_usable_model(catalog),
            **change,
        )
    except SetupChangedError as exc:
        raise ApiError(409, f"setup.json {exc.reason}", field="version") from None
    except SetupError as exc:
        where = f" [{exc.where}]" if exc.where else ""
        raise ApiError(400, f"setup.json{where}: {exc.reason}", field=exc.where or "body") from None
    refresh(catalog, state.root, forget_after=state.config.watch.forget_after_seconds)
    data, version = setup_for_edit(state.root)
    return jsonify({"version": version, **_describe(data, path.dataset)})
