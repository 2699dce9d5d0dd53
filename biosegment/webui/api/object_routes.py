"""API views of a segmentation's objects: the table, its histogram, CSV, outlines and meshes.

A segmentation that split its classes into objects has an instance volume and an object table
(:mod:`biosegment.webui.object_files`). The list pages, sorts and filters the table (by class
and by size in voxels or nm³); the same filters give a log-binned histogram of sizes and a CSV
download of the selected rows; an object's outline on one slice comes from the instance volume,
read only within the object's bounding box, as is its surface mesh (PLY or OBJ). The id under a voxel is part of the voxel route
(:mod:`biosegment.webui.api.tile_routes`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from biosegment.engine.object_mesh import mesh_bytes
from biosegment.errors import NotFoundError
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import json_conditional
from biosegment.webui.context import web_state
from biosegment.webui.download_files import safe_file_name
from biosegment.webui.errors import ApiError
from biosegment.webui.layers import LayerRef
from biosegment.webui.object_files import OBJECT_TABLE, ObjectFiles, find_object_files
from biosegment.webui.object_table import (
    HISTOGRAM_MEASURES,
    ObjectQuery,
    ObjectTable,
    csv_lines,
    histogram,
    row_values,
    select_rows,
)
from biosegment.webui.summaries import dataset_classes

__all__ = ["api"]

api = APIBlueprint(
    "objects_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="objects", description="A segmentation's objects and their measurements")],
)

_RESPONSES: dict = {200: None, 400: None, 404: None, 413: None}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentationObjectsPath(_Strict):
    dataset: str
    name: str = Field(description="segmentation name within the dataset")


class ObjectPath(_Strict):
    dataset: str
    name: str = Field(description="segmentation name within the dataset")
    id: int = Field(ge=1, description="object id, as in the table's id column")


class ObjectFilter(_Strict):
    class_: str | None = Field(
        None, alias="class", description="class ids to keep, comma-separated (e.g. 1 or 1,3)"
    )
    min_voxels: int | None = Field(None, ge=0, description="keep objects of at least this size")
    max_voxels: int | None = Field(None, ge=0, description="keep objects of at most this size")
    min_volume_nm3: float | None = Field(
        None, ge=0, description="keep objects of at least this volume (needs the voxel size)"
    )
    max_volume_nm3: float | None = Field(
        None, ge=0, description="keep objects of at most this volume (needs the voxel size)"
    )


class ObjectOrder(ObjectFilter):
    sort: str = Field("id", description="the column to sort by: any column of the table")
    order: Literal["asc", "desc"] = Field("asc", description="asc or desc; unknown values last")


class ObjectListQuery(ObjectOrder):
    page: int = Field(1, ge=1, description="page number, from 1")
    per_page: int = Field(100, ge=1, le=1000, description="rows per page, at most 1000")


class HistogramQuery(ObjectFilter):
    measure: Literal["volume_nm3", "voxels"] | None = Field(
        None, description="what to bin; default volume_nm3 where the voxel size is known"
    )
    bins: int = Field(20, ge=1, le=200, description="number of log-spaced bins")


class MeshQuery(_Strict):
    format: Literal["ply", "obj"] = Field("ply", description="ply (binary) or obj (text)")
    max_faces: int = Field(
        200_000,
        ge=100,
        le=2_000_000,
        description="a larger object is decimated until its mesh has at most this many faces",
    )


class OutlineQuery(_Strict):
    z: int | None = Field(None, ge=0, description="slice; default: the object's centroid slice")


def _classes_asked(text: str | None) -> tuple[int, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ApiError(
            400, f"class: {text!r} is not a list of class ids such as 1 or 1,3", field="class"
        ) from None


def _query(query: ObjectFilter) -> ObjectQuery:
    sort = getattr(query, "sort", "id")
    order = getattr(query, "order", "asc")
    return ObjectQuery(
        classes=_classes_asked(query.class_),
        min_voxels=query.min_voxels,
        max_voxels=query.max_voxels,
        min_volume_nm3=query.min_volume_nm3,
        max_volume_nm3=query.max_volume_nm3,
        sort=sort,
        order=order,
    )


def _objects_of(dataset: str, name: str) -> tuple[ObjectFiles, ObjectTable]:
    state = web_state()
    files = find_object_files(state.root, state.catalog(), dataset, name)
    if files.table is None:
        raise NotFoundError(
            f"segmentation {name!r} of {dataset!r} has no object table ({OBJECT_TABLE})"
        )
    # Parsed outside the read gate's deadline: a table of a million rows may take longer than
    # a tile read may, and is parsed once per version of its file (then served from memory).
    return files, state.objects.table(files.table)


def _class_counts(table: ObjectTable, dataset: str) -> list[dict]:
    """Each class the table has, with its name and number of objects (for the class filter)."""
    if not table.has_numbers("class"):
        return []
    catalog = web_state().catalog()
    names = {c["id"]: c["name"] for c in dataset_classes(catalog, catalog.dataset(dataset))}
    classes = table.values["class"]
    written = table.values.get("class_name")
    found = []
    for class_id, count in zip(*np.unique(classes[np.isfinite(classes)], return_counts=True)):
        name = names.get(int(class_id), f"class {int(class_id)}")
        if written is not None and written.dtype == object:
            name = str(written[np.flatnonzero(classes == class_id)[0]]) or name
        found.append({"id": int(class_id), "name": name, "objects": int(count)})
    return found


@api.get("/datasets/<dataset>/segmentations/<name>/objects", responses=_RESPONSES)
def list_objects(path: SegmentationObjectsPath, query: ObjectListQuery):
    """One page of the segmentation's object table, filtered and sorted.

    ``rows`` (each object's columns as numbers or text, null where unknown), ``columns``,
    ``total`` (objects after the filters), ``objects`` (in the whole table), ``classes`` (id,
    name and count of each class), ``object_scores`` and whether there are ``instances``.
    """
    files, table = _objects_of(path.dataset, path.name)
    chosen = select_rows(table, _query(query))
    first = (query.page - 1) * query.per_page
    return json_conditional(
        {
            "dataset": path.dataset,
            "segmentation": path.name,
            "columns": list(table.columns),
            "objects": table.rows,
            "total": int(chosen.size),
            "page": query.page,
            "per_page": query.per_page,
            "sort": query.sort,
            "order": query.order,
            "rows": [row_values(table, int(i)) for i in chosen[first : first + query.per_page]],
            "classes": _class_counts(table, path.dataset),
            "volume_known": table.has_numbers("volume_nm3"),
            "instances": files.instances is not None,
            "object_scores": files.scores,
        }
    )


@api.get("/datasets/<dataset>/segmentations/<name>/objects.csv", responses=_RESPONSES)
def download_objects(path: SegmentationObjectsPath, query: ObjectOrder):
    """The object table as a CSV file, filtered and sorted as the list is.

    An attachment named ``<dataset>-<name>-objects.csv``: every column, every selected row.
    """
    _, table = _objects_of(path.dataset, path.name)
    chosen = select_rows(table, _query(query))
    file_name = safe_file_name(f"{path.dataset}-{path.name}-objects", ".csv")
    response = Response(csv_lines(table, chosen), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


@api.get("/datasets/<dataset>/segmentations/<name>/objects/histogram", responses=_RESPONSES)
def objects_histogram(path: SegmentationObjectsPath, query: HistogramQuery):
    """A histogram of the objects' sizes in log-spaced bins, filtered as the list is.

    ``counts`` in ``bins`` bins between ``edges``, of ``volume_nm3`` (the default where the
    voxel size is known) or ``voxels``; ``left_out`` counts unknown or zero sizes.
    """
    _, table = _objects_of(path.dataset, path.name)
    measure = query.measure or next(
        (m for m in HISTOGRAM_MEASURES if table.has_numbers(m)), "voxels"
    )
    if not table.has_numbers(measure):
        why = " (the voxel size is unknown)" if measure == "volume_nm3" else ""
        raise ApiError(400, f"measure: the object table has no {measure}{why}", field="measure")
    chosen = select_rows(table, _query(query))
    binned = histogram(table.values[measure][chosen], bins=query.bins)
    return json_conditional(
        {"measure": measure, "total": int(chosen.size), "bins": query.bins, **binned}
    )


def _whole(value: object, fallback: int) -> int:
    """A table cell as a whole number (rounded), or ``fallback`` where it is unknown."""
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return int(round(value))
    return fallback


def _object_with_instances(path: ObjectPath, purpose: str) -> tuple[Path, dict, tuple]:
    """Object ``path.id``'s instance volume, table row and the segmentation's shape; 404 when
    the table has no such object or there is no instance volume to ``purpose`` it from."""
    state = web_state()
    files, table = _objects_of(path.dataset, path.name)
    found = np.flatnonzero(table.values["id"] == path.id)
    if found.size == 0:
        raise NotFoundError(f"object {path.id} is not in {state.objects.shown(files.table)}")
    if files.instances is None:
        raise NotFoundError(f"segmentation {path.name!r} has no instance volume to {purpose}")
    row = row_values(table, int(found[0]))
    shape = state.layers.shape(state.catalog(), LayerRef(path.dataset, "segmentation", path.name))
    return files.instances, row, shape


@api.get("/datasets/<dataset>/segmentations/<name>/objects/<int:id>/outline", responses=_RESPONSES)
def object_outline(path: ObjectPath, query: OutlineQuery):
    """One object's outline on a slice, as polygons.

    Slice ``z`` defaults to the object's centroid slice. ``polygons``: each a closed list of
    ``[y, x]`` points in slice pixels (a pixel's centre is at its whole coordinates), empty
    where the object is not on that slice. Read from the instance volume within the object's
    bounding box only.
    """
    state = web_state()
    instances, row, shape = _object_with_instances(path, "outline")
    z0, z1 = _whole(row.get("bbox_z0"), 0), _whole(row.get("bbox_z1"), shape[0])
    z = query.z if query.z is not None else _whole(row.get("centroid_z"), z0)
    if z >= shape[0]:
        raise ApiError(400, f"z={z} is outside 0..{shape[0] - 1}", field="z")
    box = (
        max(0, _whole(row.get("bbox_y0"), 0)),
        max(0, _whole(row.get("bbox_x0"), 0)),
        min(shape[1], _whole(row.get("bbox_y1"), shape[1])),
        min(shape[2], _whole(row.get("bbox_x1"), shape[2])),
    )
    polygons: list = []
    if z0 <= z < z1 and box[0] < box[2] and box[1] < box[3]:
        polygons = state.reads.run(
            path.dataset, lambda: state.objects.outline(instances, shape, path.id, z, box)
        )
    return jsonify(
        {
            "id": path.id,
            "z": z,
            "class": row.get("class"),
            "centroid": [row.get(f"centroid_{axis}") for axis in "zyx"],
            "polygons": polygons,
        }
    )


@api.get("/datasets/<dataset>/segmentations/<name>/objects/<int:id>/mesh", responses=_RESPONSES)
def object_mesh_file(path: ObjectPath, query: MeshQuery):
    """One object's surface mesh (marching cubes) as a PLY or OBJ download.

    Vertices are x, y, z in nanometres where the dataset's voxel size is known (in voxels
    otherwise), at the object's place in the volume; an object whose mesh would have more than
    ``max_faces`` faces is decimated. Read from the instance volume within the object's
    bounding box only; a box too large for the mesh memory budget answers 413.
    """
    state = web_state()
    instances, row, shape = _object_with_instances(path, "mesh")
    catalog = state.catalog()
    box = (
        max(0, _whole(row.get("bbox_z0"), 0)),
        max(0, _whole(row.get("bbox_y0"), 0)),
        max(0, _whole(row.get("bbox_x0"), 0)),
        min(shape[0], _whole(row.get("bbox_z1"), shape[0])),
        min(shape[1], _whole(row.get("bbox_y1"), shape[1])),
        min(shape[2], _whole(row.get("bbox_x1"), shape[2])),
    )
    size = catalog.dataset(path.dataset).get("voxel_size")
    voxel_size = (
        (float(size[0]), float(size[1]), float(size[2]))
        if isinstance(size, list) and len(size) == 3
        else None
    )
    mesh = state.reads.run(
        path.dataset,
        lambda: state.objects.mesh(
            instances, shape, path.id, box, voxel_size=voxel_size, max_faces=query.max_faces
        ),
    )
    name = safe_file_name(f"{path.dataset}-{path.name}-object-{path.id}", f".{query.format}")
    return Response(
        mesh_bytes(mesh, query.format),
        mimetype="application/octet-stream" if query.format == "ply" else "text/plain",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
