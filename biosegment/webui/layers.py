"""Find and read the image layers of a dataset: its raw data and every label volume over it.

A layer is the raw volume, its ground truth, one segmentation, or one sparse annotation. The
viewer addresses a layer by ``kind`` and ``name``; :func:`read_plane` returns one plane of it
along an axis (``z`` for the usual slice, ``y`` and ``x`` for the orthogonal views) as uint8:
raw data mapped to display grey levels, label layers as class ids (0/255 masks become 0/1,
annotations keep 255 for "not painted"). Planes are cached by file fingerprint, so rewriting a
file shows the new content on the next request.

The store speaks in BioSegment's own errors, never in HTTP: :class:`~biosegment.errors.InputError`
for a request it cannot understand (an unknown kind or axis), ``NotFoundError`` for a layer that
is not there, :class:`OutsideLayer` for a plane beyond the volume and :class:`LayerConflict` when
the files disagree with each other. :mod:`biosegment.webui.errors` maps them to statuses.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosegment.catalog.probe import ANNOTATION_SLICE, fingerprint
from biosegment.errors import BioSegmentError, InputError, NotFoundError
from biosegment.folder_names import SEGMENTATION_LABELS
from biosegment.paths import ensure_inside, resolve_inside
from biosegment.volumes import (
    PyramidCache,
    VolumeReader,
    annotation_slice_name,
    is_binary_mask,
    open_volume,
    open_with_pyramid,
    read_class_ids,
    read_png_slice,
    storage_path,
)
from biosegment.volumes.png import read_png_header
from biosegment.webui.caches import ByteBudgetCache, ReaderCache

__all__ = [
    "LAYER_KINDS",
    "AXES",
    "LayerRef",
    "LayerStore",
    "plane_shape",
    "UNPAINTED",
    "LayerError",
    "OutsideLayer",
    "LayerConflict",
    "TileBox",
]

LAYER_KINDS = ("raw", "ground_truth", "segmentation", "annotation")
AXES = ("z", "y", "x")
#: Annotation value for "nothing painted here" (SPEC 4).
UNPAINTED = 255
#: Planes (at a tile's zoom level) up to this many pixels are read whole and cached, so panning
#: cuts tiles from memory; larger ones are read tile by tile, so memory follows the tile, not
#: the pixel count a file claims.
WHOLE_PLANE_PIXELS = 4096 * 4096
#: The grey-level window of a raw volume is taken from about this many pixels of its middle slice.
_WINDOW_SAMPLE_PIXELS = 2**20


class LayerError(BioSegmentError):
    """A plane the store cannot give; ``where`` names the part of the request at fault."""

    def __init__(self, reason: str, *, where: str):
        super().__init__(reason)
        self.reason = reason
        self.where = where


class OutsideLayer(LayerError):
    """The asked plane lies beyond the volume."""


class LayerConflict(LayerError):
    """The files disagree: a label layer's shape differs from its dataset's image."""


@dataclass(frozen=True, slots=True)
class TileBox:
    """Tile ``(row, col)`` of ``size`` x ``size`` pixels at zoom ``level`` of a plane."""

    level: int
    row: int
    col: int
    size: int

    @property
    def step(self) -> int:
        return 2**self.level


@dataclass(frozen=True, slots=True)
class LayerRef:
    """Which layer of which dataset: ``kind`` in :data:`LAYER_KINDS`, ``name`` for named kinds."""

    dataset: str
    kind: str
    name: str = ""


@dataclass(slots=True)
class _OpenVolume:
    reader: VolumeReader
    binary_mask: bool = False  # label volume stored as 0/255
    window: tuple[float, float] | None = None  # raw grey levels mapped to 0..255
    # Decoding readers seek one file handle; memory-mapped ones are read concurrently.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, read):
        if self.reader.is_memory_mapped:
            return read(self.reader)
        with self.lock:
            return read(self.reader)

    def close(self) -> None:
        self.reader.close()


def plane_shape(shape: tuple[int, int, int] | list[int], axis: str) -> tuple[int, int]:
    """The (rows, columns) of a plane across ``axis`` of a (z, y, x) volume."""
    z, y, x = shape
    return {"z": (y, x), "y": (z, x), "x": (z, y)}[axis]


class LayerStore:
    """Resolves layers through the catalog and serves their planes from a shared cache."""

    def __init__(self, root: Path, *, plane_budget_bytes: int = 768 * 2**20):
        self.root = Path(root)
        self.planes = ByteBudgetCache(plane_budget_bytes)
        self.readers = ReaderCache(capacity=24)
        self.pyramids = PyramidCache.for_data_folder(self.root)
        self._lock = threading.Lock()

    # -- locating ------------------------------------------------------------------------------

    def layer_path(self, catalog, ref: LayerRef) -> Path:
        """The file or folder that holds the layer (NotFoundError when there is no such layer)."""
        dataset = catalog.dataset(ref.dataset)
        if ref.kind == "raw":
            location = dataset.get("location")
        elif ref.kind == "ground_truth":
            location = dataset.get("ground_truth")
            if not location:
                raise NotFoundError(f"dataset {ref.dataset!r} has no ground truth")
        elif ref.kind == "segmentation":
            location = catalog.segmentation(ref.dataset, ref.name).get("location")
        elif ref.kind == "annotation":
            location = catalog.annotation(ref.dataset, ref.name).get("location")
        else:
            raise InputError(
                f"unknown layer kind {ref.kind!r}; expected one of {', '.join(LAYER_KINDS)}",
                where="kind",
            )
        if not location:
            raise NotFoundError(f"{ref.kind} {ref.name or ref.dataset!r} has no files")
        path = resolve_inside(self.root, location)
        if ref.kind == "segmentation" and path.is_dir() and (path / SEGMENTATION_LABELS).is_file():
            path = path / SEGMENTATION_LABELS
        # storage_path: a dataset inside an HDF5 file (EM/a.h5/raw) exists when its file does
        if not storage_path(path).exists() and ref.kind != "annotation":
            raise NotFoundError(f"{location} is missing from the data folder")
        return path

    def version(self, catalog, ref: LayerRef) -> str:
        """A token that changes whenever the layer's files change (for ETags and cache keys)."""
        return self._version(self.layer_path(catalog, ref), ref.kind)

    def _version(self, path: Path, kind: str) -> str:
        token = fingerprint(path) or "absent"
        if kind == "raw":  # a pyramid built later changes what zoomed-out tiles show
            token += f"+{fingerprint(self.pyramids.folder) or ''}"
        return token

    # -- reading -------------------------------------------------------------------------------

    def _open(self, path: Path, kind: str, file_type: str | None) -> _OpenVolume:
        key = (str(path), self._version(path, kind), kind)

        def open_() -> _OpenVolume:
            reader = open_volume(path, file_type if kind == "raw" else None)
            try:
                for file in reader.info.files:  # a slice linked outside is never served
                    ensure_inside(self.root, file)
            except BaseException:
                reader.close()
                raise
            if kind == "raw":
                # a pyramid built by `biosegment pyramid` (2x2 means: raw data only)
                reader = open_with_pyramid(reader, self.pyramids)
            opened = _OpenVolume(reader)
            if kind == "raw":
                opened.window = _display_window(reader)
            elif reader.dtype == np.uint8:
                opened.binary_mask = is_binary_mask(reader)
            return opened

        return self.readers.get_or_open(key, open_)

    def shape(self, catalog, ref: LayerRef) -> tuple[int, int, int]:
        """The (z, y, x) of the layer's dataset, as the catalog recorded it.

        Never probes files: requests call this on the server's threads, and probing a damaged
        dataset there (once per request, one request at a time) held them all while other
        pages waited. A dataset the scan could not read is refused with the reason it recorded.
        """
        dataset = catalog.dataset(ref.dataset)
        if dataset.get("shape"):
            return tuple(dataset["shape"])
        raise InputError(
            f"dataset {ref.dataset!r} is {dataset.get('state')}: "
            f"{dataset.get('error') or 'its shape is not known yet'}",
            where="dataset",
        )

    def read_plane(
        self, catalog, ref: LayerRef, axis: str, index: int, *, level: int = 0
    ) -> np.ndarray:
        """Plane ``index`` across ``axis`` as uint8 (display levels or class ids), keeping every
        ``2**level``-th pixel: a zoomed-out view of a huge slice reads only the rows it shows."""
        if axis not in AXES:
            raise InputError(f"axis must be one of {', '.join(AXES)}", where="axis")
        shape = self.shape(catalog, ref)
        limit = shape[AXES.index(axis)]
        if not 0 <= index < limit:
            raise OutsideLayer(f"{axis}={index} is outside 0..{limit - 1}", where="index")
        step = 2**level
        path = self.layer_path(catalog, ref)
        version = self._version(path, ref.kind)
        key = (str(path), version, ref.kind, axis, index, step)
        if ref.kind == "annotation":
            return self.planes.get_or_compute(
                key,
                lambda: _annotation_plane(self.root, path, shape, axis, index)[
                    ::step, ::step
                ].copy(),
            )
        file_type = catalog.dataset(ref.dataset).get("file_type") if ref.kind == "raw" else None
        opened = self._open(path, ref.kind, file_type)
        if tuple(opened.reader.shape) != tuple(shape):
            raise LayerConflict(
                f"{ref.kind} {ref.name or ''} has shape "
                f"{list(opened.reader.shape)}, the dataset {list(shape)}",
                where="kind",
            )
        return self.planes.get_or_compute(
            key, lambda: _volume_plane(opened, ref.kind, axis, index, step)
        )

    def read_tile(self, catalog, ref: LayerRef, axis: str, index: int, box: TileBox) -> np.ndarray:
        """The uint8 pixels of one tile of plane ``index`` across ``axis``.

        A plane small enough at the tile's level is read whole (and cached for the next
        tiles); a larger one is read only within the tile's box.
        """
        if axis not in AXES:
            raise InputError(f"axis must be one of {', '.join(AXES)}", where="axis")
        shape = self.shape(catalog, ref)
        rows, cols = plane_shape(shape, axis)
        step = box.step
        rows_at_level, cols_at_level = -(-rows // step), -(-cols // step)
        # the rows of a y or x plane are slices (a page or file each): read only a tile's worth
        # when there are more than one tile's rows of them
        small = rows_at_level * cols_at_level <= WHOLE_PLANE_PIXELS and (
            axis == "z" or rows_at_level <= box.size
        )
        if ref.kind == "annotation" or small:
            plane = self.read_plane(catalog, ref, axis, index, level=box.level)
            y0, x0 = box.row * box.size, box.col * box.size
            return np.ascontiguousarray(plane[y0 : y0 + box.size, x0 : x0 + box.size])
        limit = shape[AXES.index(axis)]
        if not 0 <= index < limit:
            raise OutsideLayer(f"{axis}={index} is outside 0..{limit - 1}", where="index")
        path = self.layer_path(catalog, ref)
        file_type = catalog.dataset(ref.dataset).get("file_type") if ref.kind == "raw" else None
        opened = self._open(path, ref.kind, file_type)
        if tuple(opened.reader.shape) != tuple(shape):
            raise LayerConflict(
                f"{ref.kind} {ref.name or ''} has shape "
                f"{list(opened.reader.shape)}, the dataset {list(shape)}",
                where="kind",
            )
        return _volume_tile(opened, ref.kind, axis, index, box)

    def voxel(self, catalog, ref: LayerRef, z: int, y: int, x: int) -> float | int:
        """The stored value at one voxel (raw grey value, or class id for label layers)."""
        if ref.kind == "raw":
            dataset = catalog.dataset(ref.dataset)
            opened = self._open(self.layer_path(catalog, ref), "raw", dataset.get("file_type"))
            block = opened.read(lambda r: r.read_block(z, z + 1, slice(y, y + 1), slice(x, x + 1)))
            return block[0, 0, 0].item()
        return int(self.read_plane(catalog, ref, "z", z)[y, x])

    def close(self) -> None:
        self.readers.close()
        self.planes.clear()


def _display_window(reader: VolumeReader) -> tuple[float, float] | None:
    """Grey levels that map to black and white; None for uint8, shown as stored."""
    if reader.dtype == np.uint8:
        return None
    _, height, width = reader.shape
    # a strided sample: a huge slice costs about a megapixel here, not its whole size
    every = slice(None, None, max(1, int(np.ceil(np.sqrt(height * width / _WINDOW_SAMPLE_PIXELS)))))
    middle = reader.read_block(reader.shape[0] // 2, reader.shape[0] // 2 + 1, every, every)
    low, high = np.percentile(middle, [0.5, 99.5])
    if high <= low:
        high = low + 1
    return float(low), float(high)


def _stored_level(reader: VolumeReader, step: int) -> int | None:
    """The pyramid level that keeps every ``step``-th row and column of a slice, if stored."""
    _, height, width = reader.shape
    wanted = (-(-height // step), -(-width // step))
    for level in reader.levels[1:]:
        if level.factors == (1.0, float(step), float(step)) and level.shape[1:] == wanted:
            return level.index
    return None


def _volume_tile(opened: _OpenVolume, kind: str, axis: str, index: int, box: TileBox) -> np.ndarray:
    """One tile of a plane, reading only the tile's box (every ``step``-th voxel of it)."""
    step, span = box.step, box.size * box.step
    rows_total, cols_total = plane_shape(opened.reader.shape, axis)
    r0, c0 = box.row * span, box.col * span
    rows = slice(r0, min(rows_total, r0 + span), step)
    cols = slice(c0, min(cols_total, c0 + span), step)
    stored = _stored_level(opened.reader, step) if axis == "z" and step > 1 else None
    if stored is not None:
        # the pyramid's own level holds these pixels: read its box at step 1
        at_level = (
            slice(rows.start // step, -(-rows.stop // step)),
            slice(cols.start // step, -(-cols.stop // step)),
        )
        tile = opened.read(lambda r: r.level(stored).read_block(index, index + 1, *at_level))[0]
    elif axis == "z":
        tile = opened.read(lambda r: r.read_block(index, index + 1, rows, cols))[0]
    else:
        # rows of a y or x plane are slices: read only the ones the zoom level shows
        line = slice(index, index + 1)
        box = (line, cols) if axis == "y" else (cols, line)
        tile = opened.read(
            lambda r: np.concatenate(
                [r.read_block(z, z + 1, *box) for z in range(rows.start, rows.stop, step)]
            )
        )
        tile = tile[:, 0, :] if axis == "y" else tile[:, :, 0]
    return _display(opened, kind, tile)


def _volume_plane(
    opened: _OpenVolume, kind: str, axis: str, index: int, step: int = 1
) -> np.ndarray:
    depth = opened.reader.shape[0]
    stored = _stored_level(opened.reader, step) if axis == "z" and step > 1 else None
    if stored is not None:
        # the volume's own pyramid (OME-Zarr, N5) holds this zoom level: read its small slice
        plane = opened.read(lambda r: r.level(stored).read_slice(index))
    elif axis == "z" and step > 1:
        # strided read: a memory-mapped stack touches only the rows the zoom level shows
        every = slice(None, None, step)
        plane = opened.read(lambda r: r.read_block(index, index + 1, every, every))[0]
    elif axis == "z":
        plane = opened.read(lambda r: r.read_slice(index))
    elif step > 1:
        # a zoomed-out y or x plane: read only the slices it shows, every step-th one
        line = slice(index, index + 1)
        every = slice(None, None, step)
        box = (line, every) if axis == "y" else (every, line)
        plane = opened.read(
            lambda r: np.concatenate([r.read_block(z, z + 1, *box) for z in range(0, depth, step)])
        )
        plane = plane[:, 0, :] if axis == "y" else plane[:, :, 0]
    elif axis == "y":
        rows = slice(index, index + 1)
        plane = opened.read(lambda r: r.read_block(0, depth, rows, None))[:, 0, :]
    else:
        columns = slice(index, index + 1)
        plane = opened.read(lambda r: r.read_block(0, depth, None, columns))[:, :, 0]
    return _display(opened, kind, plane)


def _display(opened: _OpenVolume, kind: str, plane: np.ndarray) -> np.ndarray:
    """Stored values as uint8: display grey levels for raw data, class ids for labels."""
    if kind == "raw":
        if opened.window is None:
            return np.ascontiguousarray(plane)
        low, high = opened.window
        scaled = (plane.astype(np.float32) - low) * (255.0 / (high - low))
        return np.clip(scaled, 0, 255).astype(np.uint8)
    if plane.dtype != np.uint8:
        plane = np.clip(plane, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(read_class_ids(plane, binary=opened.binary_mask))


def _annotation_plane(root: Path, folder: Path, shape, axis: str, index: int) -> np.ndarray:
    """A plane of a sparse annotation: painted slices where they exist, 255 elsewhere."""
    nz, ny, nx = shape
    if axis == "z":
        file = folder / annotation_slice_name(index)
        if not file.is_file():
            return np.full((ny, nx), UNPAINTED, dtype=np.uint8)
        return _read_annotation_slice(ensure_inside(root, file), (ny, nx))
    plane = np.full(plane_shape(shape, axis), UNPAINTED, dtype=np.uint8)
    if folder.is_dir():
        for name in os.listdir(folder):
            match = ANNOTATION_SLICE.match(name)
            if not match or int(match.group(1)) >= nz:
                continue
            painted = _read_annotation_slice(ensure_inside(root, folder / name), (ny, nx))
            plane[int(match.group(1))] = painted[index, :] if axis == "y" else painted[:, index]
    return plane


def _read_annotation_slice(file: Path, expected: tuple[int, int]) -> np.ndarray:
    header = read_png_header(file)  # the size first: decoding follows what the file claims
    if (header.height, header.width) != expected:
        raise LayerConflict(
            f"{file.name} is {header.width}x{header.height}, the dataset "
            f"slices {expected[1]}x{expected[0]}",
            where="z",
        )
    return _checked_slice(read_png_slice(file), expected, file)


def _checked_slice(array: np.ndarray, expected: tuple[int, int], file: Path) -> np.ndarray:
    if array.shape != expected:
        raise LayerConflict(
            f"{file.name} is {array.shape[1]}x{array.shape[0]}, the dataset "
            f"slices {expected[1]}x{expected[0]}",
            where="z",
        )
    return array
