"""The shapes of API requests, as pydantic models that flask-openapi3 validates and documents.

Every model forbids unknown fields, so a typo in a request is a 400 naming the field instead of a
silently ignored option. Path models name the URL parts of each route.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from biosegment.webui.names import NAME_RULE, NAME_SCHEMA

__all__ = [
    "DatasetPath",
    "ModelPath",
    "SegmentationPath",
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
    "TrainRequest",
    "ClassSpec",
    "SliceQuery",
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


class NewAnnotation(_Strict):
    name: str = Field(
        description=f"folder name of the new annotation: {NAME_RULE}", json_schema_extra=NAME_SCHEMA
    )
    classes: list[ClassSpec] | None = Field(
        None, description="classes to paint; default: background plus the project's classes"
    )
    author: str = Field("", max_length=100)


class SegmentRequest(_Strict):
    dataset: str
    model: str
    name: str | None = Field(
        None,
        description="name of the segmentation (default: chosen by the job service)",
        json_schema_extra=NAME_SCHEMA,
    )


class TrainRequest(_Strict):
    dataset: str
    annotation: str | None = Field(
        None, description="train on this annotation of the dataset (default: its ground truth)"
    )
    base_model: str | None = Field(
        None,
        description='fine-tune from this model; "scratch": a new network; default: the '
        "project's default model (a new network where it has none)",
    )
    minutes: float | None = Field(
        None,
        gt=0,
        le=10080,
        description="training time budget in minutes (default: 3 when neither epochs nor "
        "max_steps is given)",
    )
    epochs: int | None = Field(None, ge=1, le=10000, description="stop after this many epochs")
    max_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="stop after this many optimizer steps"
    )
    name: str | None = Field(
        None, description="name of the new model", json_schema_extra=NAME_SCHEMA
    )


class SliceQuery(_Strict):
    format: Literal["raw", "png"] = Field(
        "raw", description="raw: height*width bytes of class ids; png: a greyscale PNG"
    )
