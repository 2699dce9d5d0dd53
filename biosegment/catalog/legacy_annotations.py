"""Import the old stack's ``annotations.json`` into BioSegment's per-slice PNG annotations.

The old web viewer saved scribbles as Plotly shapes, keyed by slice: ``{"12": [shape, ...]}``.
A shape's class is its stroke colour from Plotly's Light24 palette (``#FD3216`` class 0,
``#00FE35`` class 1, ``#6A76FC`` class 2). Open paths (``M x,y L x,y ...``) and lines are painted
as strokes of the shape's line width; closed paths (ending in ``Z``), rectangles and circles are
filled. Each slice becomes ``z#####.png`` (class ids, 255 where nothing was painted) and the
folder gets an ``annotation.json`` recording where it came from. The original file is never
changed or removed. It is imported again only if it changes and nobody has painted on the
imported slices since; otherwise the conflict is reported and both versions stay as they are.
Shapes that cannot be read (unknown colour, bad path) are skipped and reported with their slice
key and index; the rest of the file is still imported.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from biosegment.catalog.probe import ANNOTATION_SLICE, fingerprint
from biosegment.catalog.rows import now_iso
from biosegment.errors import InputError
from biosegment.paths import resolve_inside
from biosegment.volumes.atomic import AtomicFile
from biosegment.volumes.png import annotation_slice_name, write_png_slice

__all__ = [
    "LEGACY_CLASS_COLORS",
    "LEGACY_CLASSES",
    "LegacyImport",
    "import_legacy_annotations",
    "rasterise_shapes",
    "ANNOTATION_META",
]

ANNOTATION_META = "annotation.json"

#: Stroke colour -> class id, as the old stack's viewer assigned them.
LEGACY_CLASS_COLORS = {"#fd3216": 0, "#00fe35": 1, "#6a76fc": 2}
#: The classes those colours stood for in the old stack (SPEC 4).
LEGACY_CLASSES = (
    {"id": 0, "name": "background", "color": "#FD3216"},
    {"id": 1, "name": "mitochondria", "color": "#00FE35"},
    {"id": 2, "name": "endoplasmic reticulum", "color": "#6A76FC"},
)
#: Plotly's default width for a newly drawn shape's outline, used when a shape has none.
DEFAULT_LINE_WIDTH = 4.0
UNLABELED = 255

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATH_TOKEN = re.compile(rf"([MLHVZmlhvz])|({_NUMBER})")
_RGB = re.compile(r"^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)")


@dataclass(slots=True)
class LegacyImport:
    """What one import did: the slices written and the shapes it had to skip."""

    source: str  #: the annotations.json, relative to the root
    destination: str  #: the annotation folder, relative to the root
    imported: bool = False  #: False when it was already up to date
    slices: list[int] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)


def import_legacy_annotations(
    root: Path, source: str, destination: str, shape_yx: tuple[int, int]
) -> LegacyImport:
    """Convert ``<root>/<source>`` (old annotations.json) into PNG slices in ``destination``.

    ``shape_yx`` is the dataset's slice size. Returns what happened; raises nothing for bad
    content (problems are listed), only :class:`OSError` if the folder cannot be written.
    """

    source_path = resolve_inside(root, source)
    folder = resolve_inside(root, destination)
    result = LegacyImport(source=source, destination=destination)
    source_print = fingerprint(source_path)
    meta_path = folder / ANNOTATION_META
    previous = _read_meta(meta_path)
    if previous is not None:
        legacy = previous.get("imported_from") or {}
        if not legacy:
            result.problems.append(
                InputError(
                    f"{destination} already holds an annotation that was not imported from this "
                    "file; not imported",
                    source=source,
                )
            )
            return result
        if legacy.get("fingerprint") == source_print:
            return result  # already imported, unchanged since
        if _edited_since_import(folder, legacy):
            result.problems.append(
                InputError(
                    f"changed after its slices were edited in BioSegment; not imported again "
                    f"(the edited slices in {destination} are kept)",
                    source=source,
                )
            )
            return result
    try:
        data = json.loads(source_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        result.problems.append(
            InputError(
                f"invalid JSON: {exc.msg}",
                source=source,
                where=f"line {exc.lineno}, column {exc.colno}",
            )
        )
        return result
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        result.problems.append(InputError(f"cannot read: {exc}", source=source))
        return result
    shapes_by_slice = _shapes_by_slice(data, source, result.problems)
    if shapes_by_slice is None:
        return result
    folder.mkdir(parents=True, exist_ok=True)
    for z, (key, shapes) in sorted(shapes_by_slice.items()):
        labels = rasterise_shapes(
            shapes, shape_yx, source=source, key=key, problems=result.problems
        )
        if labels is None:
            continue
        write_png_slice(folder / annotation_slice_name(z), labels)
        result.slices.append(z)
    # Slices an earlier import wrote but the changed file no longer has are ours to remove:
    # nobody edited them (checked above), and keeping them would paint strokes that are gone.
    earlier = (previous or {}).get("imported_from", {}).get("slices") or []
    for z in set(earlier) - set(result.slices):
        if isinstance(z, int) and z >= 0:
            (folder / annotation_slice_name(z)).unlink(missing_ok=True)
    _write_meta(meta_path, previous, source, source_print, result.slices)
    result.imported = True
    return result


def rasterise_shapes(
    shapes: list,
    shape_yx: tuple[int, int],
    *,
    source: str = "",
    key: str = "",
    problems: list[InputError] | None = None,
) -> np.ndarray | None:
    """Paint Plotly shapes into a uint8 (y, x) slice of class ids (255 = unpainted).

    Returns None when no shape could be painted. Shapes are painted in order, so a later stroke
    wins where two overlap, as it did on screen.
    """
    problems = problems if problems is not None else []
    height, width = shape_yx
    image = Image.new("L", (width, height), UNLABELED)
    draw = ImageDraw.Draw(image)
    painted = 0
    for index, shape in enumerate(shapes):
        where = f"{key}[{index}]"
        try:
            class_id, line_width = _style(shape)
            _paint(draw, shape, class_id, line_width)
            painted += 1
        except _ShapeError as exc:
            problems.append(InputError(str(exc), source=source, where=where))
    if not painted:
        return None
    return np.asarray(image, dtype=np.uint8)


class _ShapeError(ValueError):
    """A shape that cannot be painted; reported and skipped."""


def _shapes_by_slice(data: Any, source: str, problems: list[InputError]) -> dict | None:
    # Saved files hold {"<slice>": [shapes]}; API payloads wrapped that in {"shapes": ...}.
    if isinstance(data, dict) and isinstance(data.get("shapes"), dict):
        data = data["shapes"]
    if not isinstance(data, dict):
        problems.append(
            InputError("expected an object of slice number -> list of shapes", source=source)
        )
        return None
    by_slice = {}
    for key, shapes in data.items():
        try:
            z = int(str(key).strip())
            if z < 0:
                raise ValueError
        except ValueError:
            problems.append(
                InputError("slice key is not a slice number", source=source, where=repr(key))
            )
            continue
        if shapes is None:
            continue
        if not isinstance(shapes, list):
            problems.append(InputError("expected a list of shapes", source=source, where=key))
            continue
        by_slice[z] = (key, shapes)
    return by_slice


def _style(shape: Any) -> tuple[int, float]:
    if not isinstance(shape, dict):
        raise _ShapeError("a shape must be an object")
    line = shape.get("line") or {}
    color = line.get("color") if isinstance(line, dict) else None
    class_id = _class_of(color)
    width = line.get("width") if isinstance(line, dict) else None
    if not isinstance(width, (int, float)) or isinstance(width, bool) or width <= 0:
        width = DEFAULT_LINE_WIDTH
    return class_id, float(width)


def _class_of(color: Any) -> int:
    if not isinstance(color, str):
        raise _ShapeError("shape has no stroke colour, so its class is unknown")
    text = color.strip().lower()
    match = _RGB.match(text)
    if match:
        text = "#" + "".join(f"{int(v):02x}" for v in match.groups())
    if text not in LEGACY_CLASS_COLORS:
        known = ", ".join(f"{c.upper()} (class {i})" for c, i in LEGACY_CLASS_COLORS.items())
        raise _ShapeError(f"stroke colour {color!r} is not a class colour; expected {known}")
    return LEGACY_CLASS_COLORS[text]


def _paint(draw: ImageDraw.ImageDraw, shape: dict, class_id: int, width: float) -> None:
    kind = shape.get("type", "path")
    stroke = max(1, round(width))
    if kind == "path":
        points, closed = _path_points(shape.get("path"))
        if closed and len(points) >= 3:
            draw.polygon(points, fill=class_id, outline=class_id, width=stroke)
        elif len(points) == 1:
            _dot(draw, points[0], width, class_id)
        else:
            draw.line(points, fill=class_id, width=stroke, joint="curve")
            for end in (points[0], points[-1]):
                _dot(draw, end, width, class_id)  # round caps, as the browser drew them
        return
    corners = [_pixel(shape.get(k), shape.get(k.replace("x", "y"))) for k in ("x0", "x1")]
    (xa, ya), (xb, yb) = corners
    box = [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)]
    if kind == "rect":
        draw.rectangle(box, fill=class_id)
    elif kind == "circle":
        draw.ellipse(box, fill=class_id)
    elif kind == "line":
        draw.line(corners, fill=class_id, width=stroke)
    else:
        raise _ShapeError(
            f"shape type {kind!r} is not supported; expected path, line, rect or circle"
        )


def _path_points(path: Any) -> tuple[list[tuple[float, float]], bool]:
    """Points of an SVG path made of M/L/H/V/Z commands (what Plotly's drawing tools emit)."""
    if not isinstance(path, str) or not path.strip():
        raise _ShapeError("path shape without a 'path' string")
    tokens = _PATH_TOKEN.findall(path)
    if "".join(c + n for c, n in tokens).replace(" ", "") != re.sub(r"[\s,]", "", path):
        raise _ShapeError(f"path {path[:40]!r} uses commands other than M, L, H, V and Z")
    points: list[tuple[float, float]] = []
    closed = False
    command: str | None = None
    numbers: list[float] = []
    x = y = 0.0

    def flush(command: str) -> None:
        nonlocal x, y, numbers
        if command in "MLml":
            if len(numbers) % 2:
                raise _ShapeError(f"path {path[:40]!r} has an odd number of coordinates")
            for i in range(0, len(numbers), 2):
                dx, dy = numbers[i], numbers[i + 1]
                x, y = (x + dx, y + dy) if command.islower() and points else (dx, dy)
                points.append((x, y))
        elif command in "HhVv":
            for value in numbers:
                if command == "H":
                    x = value
                elif command == "h":
                    x += value
                elif command == "V":
                    y = value
                else:
                    y += value
                points.append((x, y))
        numbers = []

    for letter, number in tokens:
        if letter:
            if command is not None:
                flush(command)
            command = letter
            if letter in "Zz":
                closed = True
                command = None
        else:
            if command is None:
                raise _ShapeError(f"path {path[:40]!r} starts with a number, not a command")
            numbers.append(float(number))
    if command is not None:
        flush(command)
    if not points:
        raise _ShapeError("path has no points")
    return [_pixel(px, py) for px, py in points], closed


def _pixel(x: Any, y: Any) -> tuple[float, float]:
    """Plotly image coordinates put pixel i at [i, i+1); Pillow puts its centre at i."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
        raise _ShapeError("shape coordinates must be numbers")
    return float(x) - 0.5, float(y) - 0.5


def _dot(draw: ImageDraw.ImageDraw, point: tuple[float, float], width: float, value: int) -> None:
    radius = width / 2.0
    x, y = point
    draw.ellipse(
        [x - radius + 0.5, y - radius + 0.5, x + radius - 0.5, y + radius - 0.5], fill=value
    )


def _read_meta(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _edited_since_import(folder: Path, legacy: dict) -> bool:
    """True when a slice file is newer than the import that wrote the slices."""
    imported = legacy.get("written_ns")
    if not isinstance(imported, int):
        return True
    return any(
        os.stat(folder / n).st_mtime_ns > imported
        for n in os.listdir(folder)
        if ANNOTATION_SLICE.match(n)
    )


def _write_meta(
    path: Path, previous: dict | None, source: str, source_print: str | None, slices: list[int]
) -> None:
    meta = dict(previous or {})
    meta.setdefault("classes", [dict(c) for c in LEGACY_CLASSES])
    meta.setdefault("created", now_iso())
    meta["updated"] = now_iso()
    # The newest slice mtime marks "as imported"; a later write to a slice is a person's edit.
    newest = max(
        (
            os.stat(path.parent / n).st_mtime_ns
            for n in os.listdir(path.parent)
            if ANNOTATION_SLICE.match(n)
        ),
        default=0,
    )
    meta["imported_from"] = {
        "location": source,
        "fingerprint": source_print,
        "slices": slices,
        "written_ns": newest,
    }
    with AtomicFile(path) as target:
        target.file.write((json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
