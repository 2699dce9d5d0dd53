"""API views that feed the viewer: PNG tiles of any layer along any axis, and single voxels.

A tile URL names the dataset, the layer kind (with ``?name=`` for segmentations and
annotations), the axis (``z`` slices, ``y`` XZ planes, ``x`` YZ planes), the plane, the zoom
level and the tile. Raw tiles carry display grey levels; label tiles carry class ids as grey
levels, which the page colours with the per-class colours a person picked. Every tile has an
ETag built from the layer's file fingerprint, so revisits cost a 304.
"""

from __future__ import annotations

from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag

from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import conditional, etag_for, require_voxel_inside
from biosegment.webui.api.schemas import DatasetPath, TilePath, TileQuery, VoxelQuery
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError
from biosegment.webui.layers import LayerRef, TileBox, plane_shape
from biosegment.webui.object_files import instances_of
from biosegment.webui.tiles import TILE_SIZE, TileAddress, check_address, encode_png

__all__ = ["api", "parse_layer_list"]

api = APIBlueprint(
    "tiles_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="viewer", description="Tiles and voxels for the viewer")],
)

_NAMED_KINDS = ("segmentation", "annotation")
_PNG_RESPONSE = {
    "description": "a greyscale PNG tile",
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
}


def _layer(dataset: str, kind: str, name: str) -> LayerRef:
    if kind in _NAMED_KINDS and not name:
        raise ApiError(400, f"a {kind} tile needs ?name=", field="name")
    return LayerRef(dataset, kind, name if kind in _NAMED_KINDS else "")


@api.get(
    "/datasets/<dataset>/tiles/<kind>/<axis>/<int:index>/<int:level>/<int:row>/<int:col>.png",
    responses={200: _PNG_RESPONSE, 304: None, 400: None, 404: None},
)
def get_tile(path: TilePath, query: TileQuery):
    """One 512x512 PNG tile of a layer's plane at a zoom level (level 0: full resolution)."""
    state = web_state()
    catalog = state.catalog()
    ref = _layer(path.dataset, path.kind, query.name)
    version = state.layers.version(catalog, ref)
    address = TileAddress(path.level, path.row, path.col)
    shape = state.layers.shape(catalog, ref)
    check_address(*plane_shape(shape, path.axis), address)
    etag = etag_for(ref, version, path.axis, path.index, address)

    def render() -> bytes:
        box = TileBox(address.level, address.row, address.col, TILE_SIZE)
        tile = state.reads.run(
            path.dataset, lambda: state.layers.read_tile(catalog, ref, path.axis, path.index, box)
        )
        return encode_png(tile, compress=ref.kind != "raw")

    # Revalidate every time: label layers change while people paint and jobs write.
    return conditional(etag, render, mimetype="image/png", cache_control="private, no-cache")


def parse_layer_list(dataset: str, text: str) -> list[tuple[str, LayerRef]]:
    """``ground_truth,segmentation:NAME,annotation:NAME`` as (label, layer) pairs."""
    layers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, _, name = item.partition(":")
        if kind not in ("ground_truth", *_NAMED_KINDS):
            raise ApiError(
                400,
                f"unknown layer {item!r}; use ground_truth, segmentation:NAME or annotation:NAME",
                field="layers",
            )
        layers.append((item, _layer(dataset, kind, name)))
    return layers


@api.get("/datasets/<dataset>/voxel", responses={200: None, 400: None, 404: None})
def get_voxel(path: DatasetPath, query: VoxelQuery):
    """The raw value of one voxel, the class id of each label layer asked for there, and, for
    each segmentation asked for that has an instance volume, the id of the object there
    (``objects``, 0 for none)."""
    state = web_state()
    catalog = state.catalog()
    shape = state.layers.shape(catalog, LayerRef(path.dataset, "raw"))
    require_voxel_inside(shape, query.z, query.y, query.x)
    layers = parse_layer_list(path.dataset, query.layers)

    def read() -> dict:
        result = {
            "z": query.z,
            "y": query.y,
            "x": query.x,
            "value": state.layers.voxel(
                catalog, LayerRef(path.dataset, "raw"), query.z, query.y, query.x
            ),
            "labels": {},
            "objects": {},
        }
        for label, ref in layers:
            result["labels"][label] = state.layers.voxel(catalog, ref, query.z, query.y, query.x)
        for label, ref in (item for item in layers if item[1].kind == "segmentation"):
            # files are looked for here, within the read's deadline, like every other read
            volume = instances_of(state.root, catalog, ref.dataset, ref.name)
            if volume is not None:
                result["objects"][label] = state.objects.object_at(
                    volume, shape, query.z, query.y, query.x
                )
        return result

    return jsonify(state.reads.run(path.dataset, read))
