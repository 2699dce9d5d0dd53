"""API view of the regions the annotation editor's structure-following fills paint.

``GET /datasets/<dataset>/regions/<z>?mode=...&y=...&x=...`` answers the region a click at
``(y, x)`` of slice ``z`` fills, as runs over the slice's row-major pixel indices; it changes
nothing. The editor paints the region's unpainted pixels with the current class as one
undoable stroke and saves the slice the normal way (``PUT .../annotations/<name>/slices/<z>``),
so nothing a person painted is overwritten. The modes (see :mod:`biosegment.webui.fill_regions`):

* ``object``: the connected pixels of the class under the click in ``layer``
  (``segmentation:NAME`` or ``live:JOB_ID``, the running fine-tune's live layer);
* ``edges``: the watershed basin of the smoothed image that holds the click, within ``bounds``
  (the part of the slice on screen) and at most 1024 pixels a side around the click.
"""

from __future__ import annotations

from typing import Literal

from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import Field

from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import require_voxel_inside
from biosegment.webui.api.live_routes import live_plane, live_source
from biosegment.webui.api.schemas import _Strict
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError
from biosegment.webui.fill_regions import (
    MAX_PLANE_PIXELS,
    Region,
    RegionTooLarge,
    connected_object,
    edge_region,
    edge_window,
    pixel_runs,
)
from biosegment.webui.layers import LayerRef

__all__ = ["api"]

api = APIBlueprint(
    "regions_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="annotations", description="Sparse per-slice labels")],
)


class RegionPath(_Strict):
    dataset: str
    z: int = Field(ge=0, description="slice index")


class RegionQuery(_Strict):
    mode: Literal["object", "edges"] = Field(
        description="object: the connected object under the click in `layer`; edges: the "
        "region of the smoothed image, bounded by its dark edges, that holds the click"
    )
    y: int = Field(ge=0, description="row of the click, in slice pixels")
    x: int = Field(ge=0, description="column of the click, in slice pixels")
    layer: str = Field(
        "",
        description="mode object: segmentation:NAME, or live:JOB_ID for a running fine-tune's "
        "live layer",
    )
    bounds: str = Field(
        "",
        description="mode edges: top,left,bottom,right (inclusive slice pixels) the fill stays "
        "in, usually the part of the slice on screen; default the whole slice",
    )


def _bounds(text: str) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) < 0 or values[0] > values[2] or values[1] > values[3]:
        raise ApiError(
            400,
            f"bounds must be top,left,bottom,right with top<=bottom, got {text!r}",
            field="bounds",
        )
    return values[0], values[1], values[2], values[3]


def _label_plane(dataset: str, z: int, layer: str):
    """The class ids of slice ``z`` of ``layer`` and the layer's words for a person."""
    kind, _, name = layer.partition(":")
    if kind == "live" and name:
        snapshot, row = live_source(name, z)
        if row["name"] != dataset:
            raise ApiError(
                400, f"job {name} fine-tunes on {row['name']!r}, not {dataset!r}", field="layer"
            )
        return live_plane(name, z, snapshot, row).labels, f"the live layer of job {name}"
    if kind == "segmentation" and name:
        state = web_state()
        catalog = state.catalog()
        ref = LayerRef(dataset, "segmentation", name)
        plane = state.reads.run(dataset, lambda: state.layers.read_plane(catalog, ref, "z", z))
        return plane, f"segmentation {name}"
    raise ApiError(
        400,
        f"layer must be segmentation:NAME or live:JOB_ID to take an object from, got {layer!r}",
        field="layer",
    )


@api.get(
    "/datasets/<dataset>/regions/<int:z>",
    responses={200: None, 400: None, 404: None, 409: None, 413: None, 503: None},
)
def get_region(path: RegionPath, query: RegionQuery):
    """The region a structure-following fill paints for a click at (y, x) of slice z:
    ``runs`` is [start, length, ...] over the slice's row-major pixel indices, ``pixels`` their
    count; mode object also says the ``class_id`` it took. Nothing is changed."""
    state = web_state()
    catalog = state.catalog()
    shape = state.layers.shape(catalog, LayerRef(path.dataset, "raw"))
    require_voxel_inside(shape, path.z, query.y, query.x)
    height, width = shape[1], shape[2]
    if height * width > MAX_PLANE_PIXELS:
        raise ApiError(
            413,
            f"slices of {width}x{height} pixels are larger than the {MAX_PLANE_PIXELS} pixels "
            "these fills read; use the brush or the grey-level fill",
            field="z",
        )
    answer: dict = {"mode": query.mode, "z": path.z, "y": query.y, "x": query.x}
    try:
        if query.mode == "object":
            labels, source = _label_plane(path.dataset, path.z, query.layer)
            region = connected_object(labels, query.y, query.x)
            answer.update(class_id=int(labels[query.y, query.x]), source=source)
        else:
            region = _edge_region(path.dataset, path.z, query, (height, width))
    except RegionTooLarge as exc:
        raise ApiError(413, exc.reason, field="y") from None
    answer.update(pixels=region.pixels, runs=pixel_runs(region, width))
    return jsonify(answer)


def _edge_region(dataset: str, z: int, query: RegionQuery, size: tuple[int, int]) -> Region:
    state = web_state()
    catalog = state.catalog()
    top, left, bottom, right = edge_window(*size, query.y, query.x, _bounds(query.bounds))
    raw = LayerRef(dataset, "raw")
    plane = state.reads.run(dataset, lambda: state.layers.read_plane(catalog, raw, "z", z))
    window = plane[top : bottom + 1, left : right + 1]
    return edge_region(window, query.y, query.x, top=top, left=left)
