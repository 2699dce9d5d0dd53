"""API views of sparse annotations: list, create, rename, delete (to the trash), and read or
save one painted slice. Renaming and deleting go through the job service, which refuses an
annotation a queued or running train job learns from (409).

The editor sends a slice as ``height*width`` bytes of class ids (``application/octet-stream``,
optionally gzip-encoded) or as a greyscale PNG; a body of the wrong size or with class ids the
annotation does not define is refused with 400 naming ``body``. Slices come back the same way,
255 where nothing was painted.
"""

from __future__ import annotations

import io

import numpy as np
from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, RawModel, Tag
from PIL import Image, UnidentifiedImageError

from biosegment.webui.annotation_store import (
    check_labels,
    create_annotation,
    load_slice,
    save_slice,
)
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import read_body
from biosegment.webui.api.schemas import (
    AnnotationPath,
    AnnotationSlicePath,
    DatasetPath,
    NewAnnotation,
    NewName,
    SliceQuery,
)
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError
from biosegment.webui.names import check_new_name
from biosegment.webui.summaries import dataset_classes

__all__ = ["api", "SliceBody"]

api = APIBlueprint(
    "annotations_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="annotations", description="Sparse per-slice labels")],
)


_SLICE_TYPES = ["application/octet-stream", "image/png"]


class SliceBody(RawModel):
    mimetypes: list[str] = _SLICE_TYPES


def _slice_size(catalog, dataset: str, z: int) -> tuple[int, int]:
    shape = catalog.dataset(dataset).get("shape")
    if not shape:
        raise ApiError(409, f"dataset {dataset!r} has no readable images", field="dataset")
    if z >= shape[0]:
        raise ApiError(404, f"z={z} is outside 0..{shape[0] - 1}", field="z")
    return shape[1], shape[2]


@api.get("/datasets/<dataset>/annotations", responses={200: None, 404: None})
def list_annotations(path: DatasetPath):
    """Annotations of a dataset, with their classes and painted slices."""
    catalog = web_state().catalog()
    catalog.dataset(path.dataset)
    return jsonify(catalog.annotations(path.dataset))


@api.post("/datasets/<dataset>/annotations", responses={201: None, 400: None, 404: None, 409: None})
def post_annotation(path: DatasetPath, body: NewAnnotation):
    """Create an empty annotation; its classes default to background plus the project's."""
    state = web_state()
    catalog = state.catalog()
    dataset = catalog.dataset(path.dataset)
    name = check_new_name(body.name, field="name")
    classes = (
        [c.model_dump() for c in body.classes]
        if body.classes
        else dataset_classes(catalog, dataset)
    )
    ids = [c["id"] for c in classes]
    if len(set(ids)) != len(ids):
        raise ApiError(400, "class ids must be unique", field="classes")
    row = create_annotation(
        catalog, state.root, dataset, name=name, classes=classes, author=body.author
    )
    return jsonify(row), 201


@api.get("/datasets/<dataset>/annotations/<name>", responses={200: None, 404: None})
def get_annotation(path: AnnotationPath):
    """One annotation: classes, painted slices, location."""
    return jsonify(web_state().catalog().annotation(path.dataset, path.name))


@api.post(
    "/datasets/<dataset>/annotations/<name>/rename",
    responses={200: None, 400: None, 404: None, 409: None},
)
def post_annotation_rename(path: AnnotationPath, body: NewName):
    """Rename an annotation (its folder and card); 409 when the name is taken in any case or a
    queued or running train job learns from it."""
    state = web_state()
    state.catalog().annotation(path.dataset, path.name)
    name = check_new_name(body.name, field="name")
    row = state.jobs().rename_item("annotation", path.name, name, dataset=path.dataset)
    return jsonify(row)


@api.delete("/datasets/<dataset>/annotations/<name>", responses={200: None, 404: None, 409: None})
def delete_annotation(path: AnnotationPath):
    """Move an annotation to the data folder's trash; the answer is the trash entry, whose
    ``id`` restores it (POST /api/v1/trash/<entry>/restore)."""
    state = web_state()
    state.catalog().annotation(path.dataset, path.name)
    return jsonify(state.jobs().delete_item("annotation", path.name, dataset=path.dataset))


@api.get(
    "/datasets/<dataset>/annotations/<name>/slices/<int:z>",
    responses={
        200: {
            "description": "class ids of the slice, 255 where unpainted",
            "content": {"application/octet-stream": {}, "image/png": {}},
        },
        404: None,
    },
)
def get_annotation_slice(path: AnnotationSlicePath, query: SliceQuery):
    """One slice of class ids: raw bytes (X-Height and X-Width headers) or a PNG."""
    state = web_state()
    catalog = state.catalog()
    row = catalog.annotation(path.dataset, path.name)
    size = _slice_size(catalog, path.dataset, path.z)
    labels = load_slice(state.root, row, path.z, size)
    if query.format == "png":
        buffer = io.BytesIO()
        Image.fromarray(labels).save(buffer, format="PNG")
        response = Response(buffer.getvalue(), mimetype="image/png")
    else:
        response = Response(labels.tobytes(), mimetype="application/octet-stream")
    response.headers["X-Height"], response.headers["X-Width"] = str(size[0]), str(size[1])
    response.headers["Cache-Control"] = "no-store"
    return response


def _decode_slice(data: bytes, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if (request.mimetype or "") == "image/png":
        try:
            with Image.open(io.BytesIO(data)) as image:
                # the header's size first: a small file may claim gigapixels (a PNG bomb)
                if image.size != (width, height):
                    raise ApiError(
                        400,
                        f"slice is {image.size[0]}x{image.size[1]}, the dataset "
                        f"slices are {width}x{height}",
                        field="body",
                    )
                if image.mode not in ("L", "P"):
                    raise ApiError(
                        400, f"PNG must be 8-bit greyscale, got mode {image.mode}", field="body"
                    )
                labels = np.asarray(image)
        except Image.DecompressionBombError as exc:
            raise ApiError(
                413, f"PNG claims too many pixels to decode: {exc}", field="body"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            # ValueError: a text chunk that decompresses beyond Pillow's limit (a zTXt bomb)
            raise ApiError(400, f"body is not a readable PNG: {exc}", field="body") from None
        if labels.shape != (height, width):
            raise ApiError(
                400,
                f"slice is {labels.shape[1]}x{labels.shape[0]}, the dataset "
                f"slices are {width}x{height}",
                field="body",
            )
        return labels
    if len(data) != height * width:
        raise ApiError(
            400,
            f"slice has {len(data)} bytes; a {width}x{height} slice needs "
            f"{height * width} (one class id per pixel)",
            field="body",
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width)


@api.put(
    "/datasets/<dataset>/annotations/<name>/slices/<int:z>",
    responses={200: None, 400: None, 404: None, 413: None},
)
def put_annotation_slice(path: AnnotationSlicePath, raw: SliceBody):
    """Save one painted slice (255 = unpainted); a slice with nothing painted is removed."""
    state = web_state()
    catalog = state.catalog()
    row = catalog.annotation(path.dataset, path.name)
    size = _slice_size(catalog, path.dataset, path.z)
    if (request.mimetype or "") not in _SLICE_TYPES:
        raise ApiError(415, "send application/octet-stream or image/png", field="Content-Type")
    labels = _decode_slice(read_body(), size)
    check_labels(labels, row.get("classes"))
    updated = save_slice(catalog, state.root, row, path.z, labels)
    return jsonify(updated)
