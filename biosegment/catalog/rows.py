"""How catalog rows travel between Python and SQLite.

Each table has a few columns that hold JSON (classes, metrics, parameters...) and a dataset's shape
is kept as three integer columns so it can be queried. ``encode_fields`` turns the Python values a
caller passes (lists, dicts, booleans, a shape tuple) into column values and rejects names the table
does not have; ``decode_row`` turns a stored row back into the dict every caller sees: JSON decoded,
``shape`` as a ``[z, y, x]`` list, flags as booleans.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, overload

__all__ = [
    "ENTITY_TABLES",
    "TABLE_COLUMNS",
    "JSON_COLUMNS",
    "STATES",
    "ORIGINS",
    "JOB_STATES",
    "now_iso",
    "encode_fields",
    "decode_row",
]

#: Tables of things that live in the data folder (as opposed to jobs and problems).
ENTITY_TABLES = ("projects", "datasets", "models", "segmentations", "annotations")

STATES = ("ok", "missing", "error")
ORIGINS = ("setup", "scan", "ui")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

#: Columns a caller may set, per table (``id`` and the timestamps are managed here).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": ("name", "classes", "default_model", "auto_segment", "state", "origin"),
    "datasets": (
        "name",
        "project",
        "location",
        "file_type",
        "shape_z",
        "shape_y",
        "shape_x",
        "dtype",
        "voxel_size",
        "resolution",
        "ground_truth",
        "state",
        "error",
        "origin",
        "fingerprint",
    ),
    "models": (
        "name",
        "project",
        "location",
        "architecture",
        "classes",
        "parent",
        "metrics",
        "state",
        "error",
        "origin",
        "fingerprint",
    ),
    "segmentations": (
        "dataset",
        "name",
        "model",
        "location",
        "state",
        "error",
        "origin",
        "fingerprint",
    ),
    "annotations": (
        "dataset",
        "name",
        "location",
        "classes",
        "slices",
        "state",
        "error",
        "origin",
        "fingerprint",
    ),
    "jobs": (
        "kind",
        "params",
        "state",
        "progress",
        "eta",
        "message",
        "metrics",
        "log_path",
        "result",
        "worker",
        "attempts",
        "cancel_requested",
        "model_name",
        "decision",
        "crashes",
        "started_at",
        "finished_at",
    ),
}

JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": ("classes",),
    "datasets": ("voxel_size", "resolution"),
    "models": ("architecture", "classes", "metrics"),
    "segmentations": (),
    "annotations": ("classes", "slices"),
    "jobs": ("params", "metrics", "result"),
    "problems": (),
}

_BOOLEAN_COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": ("auto_segment",),
    "jobs": ("cancel_requested",),
}


def now_iso() -> str:
    """The current time as an ISO 8601 UTC string with milliseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def encode_fields(table: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``fields`` as column values of ``table``; unknown names raise ``ValueError``."""
    allowed = TABLE_COLUMNS[table]
    values = dict(fields)
    if "shape" in values and table == "datasets":
        shape = values.pop("shape")
        if shape is None:
            values.update(shape_z=None, shape_y=None, shape_x=None)
        else:
            z, y, x = (int(n) for n in shape)
            values.update(shape_z=z, shape_y=y, shape_x=x)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)}; known: {', '.join(allowed)}")
    for column in JSON_COLUMNS.get(table, ()):
        if column in values and values[column] is not None:
            values[column] = json.dumps(_plain(values[column]), sort_keys=True, ensure_ascii=False)
    for column in _BOOLEAN_COLUMNS.get(table, ()):
        if column in values and values[column] is not None:
            values[column] = int(bool(values[column]))
    return values


@overload
def decode_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]: ...
@overload
def decode_row(table: str, row: None) -> None: ...
def decode_row(table: str, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a stored row as the dict callers see (JSON decoded, shape as a list)."""
    if row is None:
        return None
    result = dict(row)
    for column in JSON_COLUMNS.get(table, ()):
        text = result.get(column)
        result[column] = None if text is None else json.loads(text)
    for column in _BOOLEAN_COLUMNS.get(table, ()):
        if result.get(column) is not None:
            result[column] = bool(result[column])
    if table == "datasets":
        dims = (
            result.pop("shape_z", None),
            result.pop("shape_y", None),
            result.pop("shape_x", None),
        )
        result["shape"] = None if None in dims else list(dims)
    return result


def _plain(value: Any) -> Any:
    """Tuples become lists so that equal values encode to equal JSON text."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
