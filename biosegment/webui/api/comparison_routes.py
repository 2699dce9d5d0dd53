"""API views that compare a segmentation with the dataset's ground truth.

The difference tile has the layout of every other tile (``/tiles/difference/...?name=SEG``,
so the viewer draws it like a label layer): 0 where the two agree, 1 for a false positive (a
class predicted where the truth has background), 2 for a false negative (the truth's class
predicted as background), 3 where both name different classes. The scores are those of
:func:`biosegment.engine.metrics.segmentation_scores` over every slice.
"""

from __future__ import annotations

import numpy as np
from flask import jsonify
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from biosegment.engine.metrics import segmentation_scores
from biosegment.webui.api import API_PREFIX
from biosegment.webui.api.http import conditional, etag_for
from biosegment.webui.api.schemas import TileQuery
from biosegment.webui.context import web_state
from biosegment.webui.errors import ApiError
from biosegment.webui.layers import UNPAINTED, LayerRef, plane_shape
from biosegment.webui.object_files import object_scores_of
from biosegment.webui.summaries import dataset_classes
from biosegment.webui.tiles import TileAddress, check_address, cut_tile, encode_png

__all__ = ["api", "difference_plane", "AGREE", "FALSE_POSITIVE", "FALSE_NEGATIVE", "WRONG_CLASS"]

AGREE, FALSE_POSITIVE, FALSE_NEGATIVE, WRONG_CLASS = 0, 1, 2, 3

api = APIBlueprint(
    "comparison_api",
    __name__,
    url_prefix=API_PREFIX,
    abp_tags=[Tag(name="viewer", description="Tiles and voxels for the viewer")],
)


class DifferenceTilePath(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    axis: str = Field(pattern="^[zyx]$", description="z: XY slices; y: XZ planes; x: YZ planes")
    index: int = Field(ge=0)
    level: int = Field(ge=0)
    row: int = Field(ge=0)
    col: int = Field(ge=0)


class SegmentationPath(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    name: str


def difference_plane(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per pixel: agree, false positive, false negative or wrong class (unlabelled: agree)."""
    result = np.zeros(truth.shape, np.uint8)
    differ = (truth != predicted) & (truth != UNPAINTED)
    result[differ & (truth == 0)] = FALSE_POSITIVE
    result[differ & (predicted == 0)] = FALSE_NEGATIVE
    result[differ & (truth != 0) & (predicted != 0)] = WRONG_CLASS
    return result


def _refs(dataset: str, name: str) -> tuple[LayerRef, LayerRef]:
    catalog = web_state().catalog()
    if not catalog.dataset(dataset).get("ground_truth"):
        raise ApiError(
            404, f"dataset {dataset!r} has no ground truth to compare with", field="dataset"
        )
    if not name:
        raise ApiError(400, "a difference tile needs ?name= (the segmentation)", field="name")
    return LayerRef(dataset, "ground_truth", ""), LayerRef(dataset, "segmentation", name)


@api.get(
    "/datasets/<dataset>/tiles/difference/<axis>/<int:index>/<int:level>/<int:row>/<int:col>.png",
    responses={200: None, 304: None, 400: None, 404: None},
)
def get_difference_tile(path: DifferenceTilePath, query: TileQuery):
    """One tile of where a segmentation (``?name=``) and the ground truth disagree.

    Grey levels: 0 agree, 1 false positive, 2 false negative, 3 another class.
    """
    state = web_state()
    catalog = state.catalog()
    truth, predicted = _refs(path.dataset, query.name)
    address = TileAddress(path.level, path.row, path.col)
    check_address(*plane_shape(state.layers.shape(catalog, truth), path.axis), address)
    etag = etag_for(
        "difference",
        truth,
        predicted,
        state.layers.version(catalog, truth),
        state.layers.version(catalog, predicted),
        path.axis,
        path.index,
        address,
    )

    def render() -> bytes:
        planes = [
            state.layers.read_plane(catalog, ref, path.axis, path.index, level=path.level)
            for ref in (truth, predicted)
        ]
        return encode_png(cut_tile(difference_plane(*planes), address))

    return conditional(etag, render, mimetype="image/png", cache_control="private, no-cache")


@api.get(
    "/datasets/<dataset>/segmentations/<name>/scores", responses={200: None, 400: None, 404: None}
)
def get_scores(path: SegmentationPath):
    """Scores of a segmentation against the dataset's ground truth, over every slice.

    Per class IoU and Dice, their means over the classes other than background, pixel accuracy,
    and the counts of false positives and false negatives; ``objects``: the object scores its
    segmentation.json holds (object F1, precision and recall at IoU 0.5, AP-75), if any.
    """

    state = web_state()
    catalog = state.catalog()
    truth_ref, predicted_ref = _refs(path.dataset, path.name)
    depth = state.layers.shape(catalog, truth_ref)[0]
    truth = np.stack([state.layers.read_plane(catalog, truth_ref, "z", z) for z in range(depth)])
    predicted = np.stack(
        [state.layers.read_plane(catalog, predicted_ref, "z", z) for z in range(depth)]
    )
    classes = dataset_classes(catalog, catalog.dataset(path.dataset))
    count = (
        max(
            [c["id"] for c in classes]
            + [int(truth[truth != UNPAINTED].max(initial=0)), int(predicted.max(initial=0))]
        )
        + 1
    )
    names = {c["id"]: c["name"] for c in classes}
    scores = segmentation_scores(
        truth,
        np.minimum(predicted, count - 1),
        num_classes=count,
        class_names=[names.get(i, str(i)) for i in range(count)],
        ignore_label=UNPAINTED,
    )
    difference = difference_plane(truth, predicted)
    scores["false_positives"] = int((difference == FALSE_POSITIVE).sum())
    scores["false_negatives"] = int((difference == FALSE_NEGATIVE).sum())
    scores["wrong_class"] = int((difference == WRONG_CLASS).sum())
    # the object scores were computed with the segmentation (on slices the model never trained
    # on); they are shown beside the pixel scores, never recomputed here
    scores["objects"] = object_scores_of(state.root, catalog, path.dataset, path.name)
    return jsonify({"dataset": path.dataset, "segmentation": path.name, **scores})
