"""Read a segmentation's object table (``objects.csv``) and answer the questions the viewer asks.

The table is read once into one array per column: numbers as float64 (NaN where a cell is
empty, which is how the table says "unknown", e.g. a volume in nm³ without a voxel size), whole
numbers as int64, anything else as text. Whatever columns the file has are served; the ones the
filters use (``class``, ``voxels``, ``volume_nm3``) are looked up by name. Reading refuses a
table of more than ``max_rows`` rows while it counts them, so memory is bounded before the
table is kept. :func:`select_rows` filters and sorts, :func:`histogram` bins a size column on a
log scale, and :func:`csv_lines` writes the selected rows back as CSV, a block at a time.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biosegment.webui.errors import ApiError

__all__ = [
    "ObjectTable",
    "ObjectQuery",
    "read_object_table",
    "select_rows",
    "row_values",
    "histogram",
    "csv_lines",
    "HISTOGRAM_MEASURES",
    "MAX_COLUMNS",
]

#: Columns a histogram may bin: sizes, which span orders of magnitude (hence log bins).
HISTOGRAM_MEASURES = ("volume_nm3", "voxels")
_CHUNK_ROWS = 50_000
#: A table's columns are measurements; a header of more is not an object table (and would
#: make every row cost more than the row bound assumes).
MAX_COLUMNS = 1000
_CSV_BLOCK_ROWS = 2_000
# float64 holds whole numbers exactly up to here; larger ids stay floats
_EXACT_INTEGER = 2**53


@dataclass(frozen=True, slots=True)
class ObjectTable:
    """The table of one file: ``columns`` in file order, ``values[column]`` one array each."""

    columns: tuple[str, ...]
    values: dict[str, np.ndarray]
    rows: int

    @property
    def nbytes(self) -> int:
        return sum(
            array.nbytes * (8 if array.dtype == object else 1) for array in self.values.values()
        )

    def has_numbers(self, column: str) -> bool:
        """Whether ``column`` exists, holds numbers, and at least one of them is known."""
        array = self.values.get(column)
        if array is None or array.dtype == object:
            return False
        return array.dtype != np.float64 or bool(np.isfinite(array).any())


@dataclass(frozen=True, slots=True)
class ObjectQuery:
    """Which rows, in which order: None for a filter means "any"."""

    classes: tuple[int, ...] | None = None
    min_voxels: int | None = None
    max_voxels: int | None = None
    min_volume_nm3: float | None = None
    max_volume_nm3: float | None = None
    sort: str = "id"
    order: str = "asc"


def _numbers(cells: list[str]) -> np.ndarray | None:
    """The cells as float64 (NaN for empty ones), or None when one is not a number."""
    try:
        return np.array([float(cell) if cell.strip() else math.nan for cell in cells], np.float64)
    except ValueError:
        return None


def _as_text(chunk: np.ndarray) -> np.ndarray:
    if chunk.dtype == object:
        return chunk
    return np.array(["" if math.isnan(v) else repr(float(v)) for v in chunk], dtype=object)


def _column(chunks: list[np.ndarray]) -> np.ndarray:
    """One column from its chunks: text if any chunk was, whole numbers as int64 when exact."""
    if not chunks:
        return np.zeros(0, np.int64)
    if any(chunk.dtype == object for chunk in chunks):
        return np.concatenate([_as_text(chunk) for chunk in chunks])
    values = np.concatenate(chunks)
    finite = np.isfinite(values)
    if (
        finite.all()
        and (np.abs(values) < _EXACT_INTEGER).all()
        and (values == np.round(values)).all()
    ):
        return values.astype(np.int64)
    return values


def read_object_table(path: Path, *, max_rows: int, shown: str) -> ObjectTable:
    """The table in the CSV file ``path`` (``shown``: its name in messages, relative to the
    data folder). 413 when it has more than ``max_rows`` rows; 400 naming the file and line
    when its header or a row is malformed."""
    try:
        text = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise ApiError(400, f"{shown} cannot be read: {exc.strerror}", field="name") from None
    with text:
        reader = csv.reader(text)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ApiError(400, f"{shown} is empty: it needs a header row", field="name") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ApiError(400, f"{shown}: line 1: {exc}", field="name") from None
        _check_header(header, shown)
        chunks: list[list[np.ndarray]] = [[] for _ in header]
        rows = 0
        block: list[list[str]] = []
        try:
            for line in reader:
                if not line:
                    continue
                if len(line) != len(header):
                    raise ApiError(
                        400,
                        f"{shown}: line {reader.line_num}: {len(line)} cells, the header has "
                        f"{len(header)}",
                        field="name",
                    )
                rows += 1
                if rows > max_rows:
                    raise ApiError(
                        413,
                        f"{shown} has more than {max_rows} objects, more than the web server "
                        f"keeps in memory ([limits] object_rows = {max_rows}, about "
                        f"{8 * len(header)} bytes per object); raise it, or open the table in "
                        "a spreadsheet or script",
                        field="name",
                    )
                block.append(line)
                if len(block) >= _CHUNK_ROWS:
                    _add_block(chunks, block)
                    block = []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ApiError(400, f"{shown}: line {reader.line_num}: {exc}", field="name") from None
        _add_block(chunks, block)
    values = {name: _column(column) for name, column in zip(header, chunks)}
    if values["id"].dtype != np.int64:
        raise ApiError(400, f"{shown}: the id column must hold whole numbers", field="name")
    return ObjectTable(columns=tuple(header), values=values, rows=rows)


def _check_header(header: list[str], shown: str) -> None:
    if len(header) > MAX_COLUMNS:
        raise ApiError(
            400,
            f"{shown}: the header has {len(header)} columns, more than {MAX_COLUMNS}",
            field="name",
        )
    if "id" not in header:
        raise ApiError(400, f"{shown}: the header has no id column", field="name")
    seen: set[str] = set()
    for name in header:
        if not name or name in seen:
            raise ApiError(
                400, f"{shown}: the header names column {name!r} twice or not at all", field="name"
            )
        seen.add(name)


def _add_block(chunks: list[list[np.ndarray]], block: list[list[str]]) -> None:
    if not block:
        return
    for index, cells in enumerate(zip(*block)):
        cells_list = list(cells)
        numbers = _numbers(cells_list)
        if numbers is None:
            # the same words repeat (class names): keep one string object per distinct word
            words: dict[str, str] = {}
            chunks[index].append(
                np.array([words.setdefault(c, c) for c in cells_list], dtype=object)
            )
        else:
            chunks[index].append(numbers)


def _number_column(table: ObjectTable, column: str, field: str, why: str) -> np.ndarray:
    if not table.has_numbers(column):
        raise ApiError(400, f"{field}: the object table has no {column} {why}", field=field)
    return table.values[column]


def select_rows(table: ObjectTable, query: ObjectQuery) -> np.ndarray:
    """The indices of the rows ``query`` keeps, in its order (unknown values sort last)."""
    if query.sort not in table.values:
        raise ApiError(
            400,
            f"sort: no column {query.sort!r}; the table has {', '.join(table.columns)}",
            field="sort",
        )
    keep = np.ones(table.rows, bool)
    if query.classes is not None:
        classes = _number_column(table, "class", "class", "column to filter by")
        keep &= np.isin(classes, query.classes)
    for column, low, high, field in (
        ("voxels", query.min_voxels, query.max_voxels, "min_voxels"),
        ("volume_nm3", query.min_volume_nm3, query.max_volume_nm3, "min_volume_nm3"),
    ):
        if low is None and high is None:
            continue
        why = "(the voxel size is unknown)" if column == "volume_nm3" else "column"
        values = _number_column(table, column, field if low is not None else f"max{field[3:]}", why)
        if low is not None:
            keep &= values >= low
        if high is not None:
            keep &= values <= high
    kept = np.flatnonzero(keep)
    return kept[_order(table.values[query.sort][kept], descending=query.order == "desc")]


def _order(values: np.ndarray, *, descending: bool) -> np.ndarray:
    """A stable order of ``values`` (ties keep file order; NaN and empty text go last)."""
    if values.dtype == object:
        ranks = np.unique(values, return_inverse=True)[1].astype(np.float64)
        ranks[values == ""] = math.nan
    else:
        ranks = values.astype(np.float64)
    return np.argsort(-ranks if descending else ranks, kind="stable")


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    return value


def row_values(table: ObjectTable, index: int) -> dict[str, Any]:
    """Row ``index`` as JSON values: numbers, text, and None for unknown."""
    return {name: _plain(table.values[name][index]) for name in table.columns}


def histogram(values: np.ndarray, *, bins: int) -> dict[str, Any]:
    """``bins`` log-spaced bins from the smallest to the largest positive value: ``edges``
    (bins + 1 of them), ``counts``, and ``left_out`` (values that are unknown or not positive,
    which a log scale cannot place)."""
    values = values.astype(np.float64)
    placed = values[np.isfinite(values) & (values > 0)]
    if placed.size == 0:
        return {"edges": [], "counts": [], "left_out": int(values.size)}
    low, high = float(placed.min()), float(placed.max())
    if high <= low:
        high = low * 1.0001 + 1e-12  # one value: one bin around it
    edges = np.geomspace(low, high, bins + 1)
    counts, _ = np.histogram(placed, bins=edges)
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "left_out": int(values.size - placed.size),
    }


def _csv_cell(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return "" if math.isnan(value) else repr(float(value))
    return value


def csv_lines(table: ObjectTable, indices: np.ndarray) -> Iterator[bytes]:
    """The header and the rows at ``indices`` as UTF-8 CSV, a block of rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    columns = [table.values[name] for name in table.columns]
    for start in range(0, len(indices), _CSV_BLOCK_ROWS):
        for index in indices[start : start + _CSV_BLOCK_ROWS]:
            writer.writerow([_csv_cell(column[index]) for column in columns])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
