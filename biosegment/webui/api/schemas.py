"""The shapes of API requests, as pydantic models that flask-openapi3 validates and documents.

Every model forbids unknown fields, so a typo in a request is a 400 naming the field instead of a
silently ignored option; the train request also takes every value in its own JSON type (no
text for numbers, no booleans for numbers). Path models name the URL parts of each route.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from biosegment.engine import segment_settings
from biosegment.engine.segment_settings import SegmentOption
from biosegment.engine.train_settings import PERSON_OPTIONS, OptionRule
from biosegment.webui.names import NAME_RULE, NAME_SCHEMA

__all__ = [
    "DatasetPath",
    "ModelPath",
    "SegmentationPath",
    "SegmentationDownloadPath",
    "ModelExportPath",
    "AnnotationPath",
    "AnnotationSlicePath",
    "TilePath",
    "JobPath",
    "TileQuery",
    "VoxelQuery",
    "JobsQuery",
    "DatasetFilter",
    "NewAnnotation",
    "SegmentRequest",
    "SEGMENT_OPTION_NAMES",
    "TrainRequest",
    "TRAIN_OPTION_NAMES",
    "ClassSpec",
    "SliceQuery",
    "NewName",
    "TrashPath",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetPath(_Strict):
    dataset: str = Field(description="dataset name, as listed by GET /api/v1/datasets")


class ModelPath(_Strict):
    model: str = Field(description="model name")


class SegmentationPath(_Strict):
    dataset: str
    name: str = Field(description="segmentation name within the dataset")


class SegmentationDownloadPath(_Strict):
    dataset: str
    name: str = Field(description="segmentation name within the dataset")
    format: Literal["tiff", "ome-zarr"] = Field(
        description="tiff: one multi-page TIFF; ome-zarr: an OME-Zarr store, zipped"
    )


class ModelExportPath(_Strict):
    model: str = Field(description="model name")
    format: Literal["onnx", "torchscript", "bioimageio"] = Field(
        description="onnx, torchscript, or bioimageio (a Model Zoo package, zipped)"
    )


class AnnotationPath(_Strict):
    dataset: str
    name: str = Field(description="annotation name within the dataset")


class AnnotationSlicePath(_Strict):
    dataset: str
    name: str
    z: int = Field(ge=0, description="slice index")


class TilePath(_Strict):
    dataset: str
    kind: Literal["raw", "ground_truth", "segmentation", "annotation"]
    axis: Literal["z", "y", "x"] = Field(description="z: XY slices; y: XZ planes; x: YZ planes")
    index: int = Field(ge=0, description="plane index along the axis")
    level: int = Field(ge=0, description="zoom level: 0 is full resolution, each level halves")
    row: int = Field(ge=0)
    col: int = Field(ge=0)


class JobPath(_Strict):
    job_id: str


class TileQuery(_Strict):
    name: str = Field("", description="segmentation or annotation name (for those kinds)")
    v: str = Field("", description="cache-busting version token; ignored by the server")


class VoxelQuery(_Strict):
    z: int = Field(ge=0)
    y: int = Field(ge=0)
    x: int = Field(ge=0)
    layers: str = Field(
        "",
        description="comma-separated label layers to read too: "
        "ground_truth, segmentation:NAME, annotation:NAME",
    )


class JobsQuery(_Strict):
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None
    kind: str | None = None
    limit: int = Field(100, ge=1, le=1000)


class DatasetFilter(_Strict):
    dataset: str | None = None


class ClassSpec(_Strict):
    id: int = Field(ge=0, le=254)
    name: str = Field(min_length=1, max_length=100)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class ProjectClassSpec(ClassSpec):
    objects: bool | None = Field(
        None,
        description="count and measure this class's objects in every segmentation of the "
        "project (instances.tif, objects.csv); absent: left as setup.json has it",
    )


class NewAnnotation(_Strict):
    name: str = Field(
        description=f"folder name of the new annotation: {NAME_RULE}", json_schema_extra=NAME_SCHEMA
    )
    classes: list[ClassSpec] | None = Field(
        None, description="classes to paint; default: background plus the project's classes"
    )
    author: str = Field("", max_length=100)


class _SegmentTarget(_Strict):
    dataset: str
    model: str
    name: str | None = Field(
        None,
        description="name of the segmentation (default: chosen by the job service)",
        json_schema_extra=NAME_SCHEMA,
    )


def _segment_field(rule: SegmentOption) -> tuple:
    """A request field for one person-settable segmentation option, bounded as the engine is."""
    if rule.choices:
        return Literal[rule.choices] | None, Field(None, description=rule.describe())
    return int | None, Field(None, ge=rule.low, le=rule.high, description=rule.describe())


#: A segment request: what to segment with what, and the segmentation options of
#: :data:`~biosegment.engine.segment_settings.PERSON_OPTIONS` (their bounds and help text).
SegmentRequest = create_model(
    "SegmentRequest",
    __base__=_SegmentTarget,
    __module__=__name__,
    **{rule.name: _segment_field(rule) for rule in segment_settings.PERSON_OPTIONS},
)
SEGMENT_OPTION_NAMES = tuple(rule.name for rule in segment_settings.PERSON_OPTIONS)


def _option_field(rule: OptionRule) -> tuple:
    """A request field for one person-settable training option, bounded as the engine is."""
    low = {"gt": rule.low} if rule.low_open else {"ge": rule.low}
    kind = int if rule.kind is int else float
    return kind | None, Field(None, le=rule.high, description=rule.describe(), **low)


class _TrainTarget(_Strict):
    # Strict types: a JSON boolean is not a number nor "3" a whole number; either is a 400
    # naming the field rather than a run of 1 minute.
    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: str
    annotation: str | None = Field(
        None, description="train on this annotation of the dataset (default: its ground truth)"
    )
    base_model: str | None = Field(
        None,
        description='fine-tune from this model; "scratch": a new network; default: the '
        "project's default model (a new network where it has none)",
    )
    name: str | None = Field(
        None, description="name of the new model", json_schema_extra=NAME_SCHEMA
    )


#: A train request: what to train from, and the training options of
#: :data:`~biosegment.engine.train_settings.PERSON_OPTIONS` (their bounds and help text).
TrainRequest = create_model(
    "TrainRequest",
    __base__=_TrainTarget,
    __module__=__name__,
    **{rule.name: _option_field(rule) for rule in PERSON_OPTIONS},
)
TRAIN_OPTION_NAMES = tuple(rule.name for rule in PERSON_OPTIONS)


class SliceQuery(_Strict):
    format: Literal["raw", "png"] = Field(
        "raw", description="raw: height*width bytes of class ids; png: a greyscale PNG"
    )


class NewName(_Strict):
    name: str = Field(
        description=f"the new name, not taken in any case by another one of its kind: {NAME_RULE}",
        json_schema_extra=NAME_SCHEMA,
    )


class TrashPath(_Strict):
    entry: str = Field(description="a trash entry's id, as listed by GET /api/v1/trash")
