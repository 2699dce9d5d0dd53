"""Keep segmentations' object tables and instance volumes at hand for the web server.

A table is parsed once per version of its file (size and modification time) and kept while the
tables kept stay within a byte budget; an instance volume stays open (memory-mapped where its
format allows) and is read only within what a request needs: one voxel for the id under the
cursor, one object's bounding box on one slice for its outline. An outline's box is checked
against :data:`OUTLINE_MAX_PIXELS` before it is read, so a request's memory is known first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import find_contours

from biosegment.catalog.probe import fingerprint
from biosegment.engine.object_mesh import MESH_BYTES_PER_VOXEL, Mesh, object_mesh
from biosegment.engine.volume_blocks import BlockSource
from biosegment.errors import InputError
from biosegment.paths import ensure_inside, relative_to_root
from biosegment.webui.caches import ReaderCache
from biosegment.webui.errors import ApiError
from biosegment.webui.instance_reader import InstanceReader, open_instances
from biosegment.webui.layers import LayerConflict
from biosegment.webui.object_table import ObjectTable, read_object_table

__all__ = ["ObjectStore", "OUTLINE_MAX_PIXELS", "MESH_MAX_BYTES", "outline_polygons"]

#: The largest box (rows x columns of one slice) an outline reads: 64 MiB of uint32 ids.
OUTLINE_MAX_PIXELS = 4096 * 4096
#: The most memory one mesh request may take (the object's box, padded, and its arrays).
MESH_MAX_BYTES = 512 * 2**20
_TABLE_BUDGET_BYTES = 512 * 2**20


class ObjectStore:
    """Object tables (at most ``max_rows`` rows each) and open instance volumes of one folder."""

    def __init__(self, root: Path, *, max_rows: int):
        self.root = Path(root)
        self.max_rows = max_rows
        self._tables: OrderedDict[Hashable, ObjectTable] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self._parsing: dict[Hashable, threading.Lock] = {}
        self._instances = ReaderCache(capacity=8)

    def shown(self, path: Path) -> str:
        """``path`` as messages name it: relative to the data folder."""
        return relative_to_root(self.root, path)

    def table(self, path: Path) -> ObjectTable:
        """The table in ``path``, parsed at most once per version of the file."""
        ensure_inside(self.root, path)
        key = (str(path), fingerprint(path))
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
            parsing = self._parsing.setdefault(key, threading.Lock())
        with parsing:  # one parse per file, however many requests arrive at once
            with self._lock:
                if key in self._tables:
                    return self._tables[key]
            try:
                table = read_object_table(path, max_rows=self.max_rows, shown=self.shown(path))
            finally:
                with self._lock:
                    self._parsing.pop(key, None)
            with self._lock:
                self._tables[key] = table
                self._used += table.nbytes
                while self._used > _TABLE_BUDGET_BYTES and len(self._tables) > 1:
                    _, dropped = self._tables.popitem(last=False)
                    self._used -= dropped.nbytes
            return table

    def _opened(self, path: Path, shape: tuple[int, int, int]) -> InstanceReader:
        def open_() -> InstanceReader:
            return open_instances(ensure_inside(self.root, path))

        opened = self._instances.get_or_open((str(path), fingerprint(path)), open_)
        if tuple(opened.shape) != tuple(shape):
            raise LayerConflict(
                f"{self.shown(path)} has shape {list(opened.shape)}, the dataset {list(shape)}",
                where="name",
            )
        return opened

    def object_at(self, path: Path, shape: tuple[int, int, int], z: int, y: int, x: int) -> int:
        """The object id at one voxel of the instance volume ``path`` (0: no object)."""
        opened = self._opened(path, shape)
        return int(opened.read(z, slice(y, y + 1), slice(x, x + 1))[0, 0])

    def outline(
        self, path: Path, shape: tuple[int, int, int], object_id: int, z: int, box: tuple
    ) -> list[list[list[float]]]:
        """Object ``object_id``'s outline on slice ``z`` within ``box`` = (y0, x0, y1, x1)."""
        y0, x0, y1, x1 = box
        pixels = (y1 - y0) * (x1 - x0)
        if pixels > OUTLINE_MAX_PIXELS:
            raise ApiError(
                413,
                f"object {object_id} spans {y1 - y0} x {x1 - x0} pixels on a slice; an outline "
                f"reads at most {OUTLINE_MAX_PIXELS} pixels",
                field="id",
            )
        opened = self._opened(path, shape)
        crop = opened.read(z, slice(y0, y1), slice(x0, x1))
        return outline_polygons(crop == object_id, offset=(y0, x0))

    def mesh(
        self,
        path: Path,
        shape: tuple[int, int, int],
        object_id: int,
        box: tuple[int, int, int, int, int, int],
        *,
        voxel_size: tuple[float, float, float] | None,
        max_faces: int,
    ) -> Mesh:
        """Object ``object_id``'s surface within ``box`` = (z0, y0, x0, z1, y1, x1).

        Its memory is checked against the mesh budget before any slice is read.
        """
        z0, y0, x0, z1, y1, x1 = box
        needed = (z1 - z0 + 2) * (y1 - y0 + 2) * (x1 - x0 + 2) * MESH_BYTES_PER_VOXEL
        if needed > MESH_MAX_BYTES:
            raise ApiError(
                413,
                f"object {object_id} spans {z1 - z0} x {y1 - y0} x {x1 - x0} voxels; its mesh "
                f"would need about {needed // 2**20} MiB, a mesh may take "
                f"{MESH_MAX_BYTES // 2**20} MiB",
                field="id",
            )
        opened = self._opened(path, shape)

        def read(z: slice, y: slice, x: slice) -> np.ndarray:
            return np.stack([opened.read(plane, y, x) for plane in range(z.start, z.stop)])

        source = BlockSource(read, shape, "instances")
        try:
            return object_mesh(
                source,
                object_id,
                box,
                voxel_size=voxel_size,
                max_faces=max_faces,
                memory_budget=MESH_MAX_BYTES,
            )
        except InputError as exc:
            raise ApiError(400, f"{exc.where}: {exc.reason}", field="id") from None

    def close(self) -> None:
        self._instances.close()
        with self._lock:
            self._tables.clear()
            self._used = 0


def outline_polygons(mask: np.ndarray, *, offset: tuple[int, int]) -> list[list[list[float]]]:
    """Closed polygons around ``mask``'s pixels as [[y, x], ...] in slice coordinates, running
    along pixel edges' midpoints (find_contours at level 0.5 on a mask padded by one pixel)."""
    if not mask.any():
        return []
    padded = np.pad(mask.astype(np.float32), 1)
    polygons: list[Any] = []
    for contour in find_contours(padded, 0.5):
        points = contour - 1 + np.asarray(offset, np.float64)
        polygons.append([[round(float(y), 2), round(float(x), 2)] for y, x in points])
    return polygons
