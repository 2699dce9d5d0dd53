"""Measure every object of an instance volume, one slab at a time, into a table.

For each object id the table gives its class, size (voxels and nm³), surface area, centroid and
bounding box (in voxels and in nm), mean intensity of the raw image, sphericity and the major
and minor axis lengths. The definitions are scikit-image's ``regionprops`` (the reference the
tests compare with):

- centroid, and the axis lengths from the inertia tensor (``axis_major_length`` =
  ``sqrt(10 (l1 + l2 - l3))``, ``axis_minor_length`` = ``sqrt(10 (-l1 + l2 + l3))`` for the
  tensor's eigenvalues ``l1 >= l2 >= l3``), in voxels and, with the voxel size as
  ``spacing``, in nm;
- bounding box start inclusive, stop exclusive (``bbox``).

Slabs of the instance volume (and of the raw image) are read once, and only sums are kept per
object: the voxel count, the sums of z, y, x, of their squares and products, and of the
intensity. Centroids and axis lengths come from those moments, so objects that cross slab
borders are measured as a whole. The moments are sums of integers, exact in float64 up to 2**53
(an object of 10**9 voxels 3000 planes deep still fits).

The surface area is the area of the marching-cubes mesh (level 0.5, scaled by the voxel size)
of the object's mask padded by one voxel of background, summed over the slabs cube by cube
(:mod:`~biosegment.engine.object_surface`), for all objects at once. The mesh follows the voxels' steps, so it is a few percent larger than the smooth
surface the voxels sample (7 % for a ball 12 voxels in radius). Sphericity is
``pi^(1/3) (6 V)^(2/3) / A``: 1 for a smooth ball, about 0.93 for a voxelised one, less for
anything elongated or rough.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biosegment.engine.object_boxes import BoxFinder
from biosegment.engine.object_surface import SurfaceAreas
from biosegment.engine.volume_blocks import (
    SLAB_MEMORY_BUDGET,
    BlockSource,
    check_id_memory,
    slab_planes,
    z_ranges,
)
from biosegment.errors import InputError
from biosegment.volumes.atomic import AtomicFile

__all__ = [
    "COLUMNS",
    "ObjectTable",
    "ObjectMeasurer",
    "measure_objects",
    "write_object_table",
    "TABLE_BYTES_PER_VOXEL",
    "TABLE_BYTES_PER_OBJECT",
]

#: The table's columns, in order. ``*_nm`` columns are empty when the voxel size is unknown,
#: ``class`` when no classes were given, ``mean_intensity`` when no image was given.
COLUMNS = (
    "id",
    "class",
    "voxels",
    "volume_nm3",
    "surface_area_voxels",
    "surface_area_nm2",
    "sphericity",
    "centroid_z",
    "centroid_y",
    "centroid_x",
    "centroid_z_nm",
    "centroid_y_nm",
    "centroid_x_nm",
    "bbox_z0",
    "bbox_y0",
    "bbox_x0",
    "bbox_z1",
    "bbox_y1",
    "bbox_x1",
    "bbox_z0_nm",
    "bbox_y0_nm",
    "bbox_x0_nm",
    "bbox_z1_nm",
    "bbox_y1_nm",
    "bbox_x1_nm",
    "mean_intensity",
    "major_axis_length",
    "minor_axis_length",
    "major_axis_length_nm",
    "minor_axis_length_nm",
)
_INTEGER_COLUMNS = frozenset(
    {"id", "class", "voxels", "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1"}
)
#: Bytes per slab voxel at the peak when every voxel belongs to one object (measured: 58): the
#: ids and the image read, the padded copy and border flags of the surfaces, and per object
#: voxel its three coordinates, id, weights and products for the moments.
TABLE_BYTES_PER_VOXEL = 64
#: Bytes per object on top of the slab: its sums, box and areas while reading, then its row.
#: The table grows with the number of objects (known from label_instances beforehand).
TABLE_BYTES_PER_OBJECT = 512
# Second moments kept per object, as pairs of axes (0 = z, 1 = y, 2 = x).
_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


@dataclass(frozen=True, slots=True)
class ObjectTable:
    """One row per object present, sorted by id: ``columns[name][row]`` for every name in
    :data:`COLUMNS` (integers as int64, the rest float64 with NaN for "unknown")."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["id"])

    def rows(self) -> Iterator[dict[str, int | float | None]]:
        """Each row as a dict; unknown values are None."""
        for row in range(len(self)):
            yield {name: _cell(name, self.columns[name][row]) for name in COLUMNS}


def _cell(name: str, value: Any) -> int | float | None:
    if name in _INTEGER_COLUMNS:
        return int(value)
    number = float(value)
    return None if math.isnan(number) else number


class _Moments:
    """Per-id sums over the slabs: count, coordinates, their products, intensity."""

    def __init__(self) -> None:
        self.sums = np.zeros((11, 1), np.float64)

    def add(self, z0: int, ids: np.ndarray, intensity: np.ndarray | None) -> None:
        where = np.nonzero(ids)
        if not where[0].size:
            return
        labels = ids[where].astype(np.int64)
        size = int(labels.max()) + 1
        if size > self.sums.shape[1]:
            grown = np.zeros((11, max(size, 2 * self.sums.shape[1])), np.float64)
            grown[:, : self.sums.shape[1]] = self.sums
            self.sums = grown
        coords = [where[0] + z0, where[1], where[2]]
        self.sums[0, :size] += np.bincount(labels, minlength=size)
        for axis in range(3):
            self.sums[1 + axis, :size] += np.bincount(labels, coords[axis], minlength=size)
        for row, (a, b) in enumerate(_PAIRS):
            product = coords[a] * coords[b]
            self.sums[4 + row, :size] += np.bincount(labels, product, minlength=size)
        if intensity is not None:
            values = intensity[where].astype(np.float64)
            self.sums[10, :size] += np.bincount(labels, values, minlength=size)


def _axis_lengths(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """regionprops' 3-D major and minor axis lengths from (n, 3, 3) covariance matrices."""
    trace = np.trace(covariance, axis1=1, axis2=2)
    inertia = -covariance.copy()
    for axis in range(3):
        inertia[:, axis, axis] = trace - covariance[:, axis, axis]
    eigenvalues = np.clip(np.linalg.eigvalsh(inertia), 0, None)[:, ::-1]  # descending
    l1, l2, l3 = eigenvalues[:, 0], eigenvalues[:, 1], eigenvalues[:, 2]
    major = np.sqrt(np.maximum(0, 10 * (l1 + l2 - l3)))
    minor = np.sqrt(np.maximum(0, 10 * (-l1 + l2 + l3)))
    return major, minor


def _voxel_size(voxel_size: Sequence[float] | None) -> tuple[float, float, float] | None:
    if voxel_size is None:
        return None
    sizes = tuple(float(v) for v in voxel_size)
    if len(sizes) != 3 or not all(math.isfinite(v) and v > 0 for v in sizes):
        raise InputError(
            f"voxel size must be three positive numbers, got {voxel_size}", where="voxel_size"
        )
    return (sizes[0], sizes[1], sizes[2])


class ObjectMeasurer:
    """Measure the objects of an instance volume from its slabs, handed over in z order.

    :func:`measure_objects` reads the slabs itself; a caller that already holds each slab (the
    writer of :func:`~biosegment.engine.instances.label_instances`' output, say) can measure
    as it goes and save reading the volume again: :meth:`add` every slab, then :meth:`table`.

    :param shape: the instance volume's (z, y, x) shape.
    :param voxel_size: (z, y, x) in nm, for the ``*_nm`` columns.
    :param intensity: whether every slab comes with the raw image's planes (mean intensity).
    :param memory_budget: bytes the per-object sums may take (:data:`TABLE_BYTES_PER_OBJECT`
        per id up to the largest id).
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        voxel_size: Sequence[float] | None = None,
        intensity: bool = False,
        memory_budget: int = SLAB_MEMORY_BUDGET,
    ):
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.voxel_size = _voxel_size(voxel_size)
        self.intensity = intensity
        self.memory_budget = memory_budget
        self._next_plane = 0
        self._moments = _Moments()
        self._boxes = BoxFinder(self.shape)
        spacings = [(1.0, 1.0, 1.0)]
        if self.voxel_size is not None:
            spacings.append(self.voxel_size)
        self._surfaces = SurfaceAreas((self.shape[1], self.shape[2]), spacings)

    def add(self, z0: int, ids: np.ndarray, intensity: np.ndarray | None = None) -> None:
        """Take the slab ``ids`` that starts at plane ``z0`` (right after the previous one).

        :param z0: the slab's first plane.
        :param ids: its instance ids, ``(planes, y, x)``.
        :param intensity: the raw image's same planes (when the measurer was made for them).
        :raises InputError: for a slab out of order or of the wrong shape, ids that are not
            integers of 0 or more or too large for the memory budget, or a missing or
            unexpected image slab.
        """
        if z0 != self._next_plane:
            raise InputError(
                f"slab at plane {z0}, expected plane {self._next_plane}", where="labels"
            )
        if ids.ndim != 3 or ids.shape[1:] != self.shape[1:] or z0 + len(ids) > self.shape[0]:
            raise InputError(f"slab of shape {ids.shape} does not fit {self.shape}", where="labels")
        if ids.dtype.kind not in "ui" or (ids.size and int(ids.min()) < 0):
            raise InputError(
                f"instance ids must be integers of 0 or more, got {ids.dtype}", where="labels"
            )
        if (intensity is not None) != self.intensity:
            wanted = "needs" if self.intensity else "was made without"
            raise InputError(f"the measurer {wanted} the image's planes", where="intensity")
        if intensity is not None and intensity.shape != ids.shape:
            raise InputError(
                f"image planes of shape {intensity.shape} for ids of shape {ids.shape}",
                where="intensity",
            )
        if ids.size:
            check_id_memory(
                int(ids.max()), TABLE_BYTES_PER_OBJECT, self.memory_budget, where="labels"
            )
        self._next_plane = z0 + len(ids)
        self._boxes.add(z0, ids)
        self._surfaces.add(ids)
        self._moments.add(z0, ids, intensity)

    def table(self, class_of_id: Sequence[int] | np.ndarray | None = None) -> ObjectTable:
        """The table of every id seen, once all planes were added.

        :param class_of_id: the class of each id (index = id), e.g.
            :attr:`~biosegment.engine.instances.Instances.class_of_id`.
        :returns: one row per id present.
        :raises InputError: when planes are missing or an id has no class.
        """
        if self._next_plane != self.shape[0]:
            raise InputError(
                f"planes {self._next_plane}-{self.shape[0] - 1} were never added", where="labels"
            )
        return _table(
            self._moments, self._boxes, self._surfaces, self.voxel_size, self.intensity, class_of_id
        )


def measure_objects(
    labels: Any,
    *,
    class_of_id: Sequence[int] | np.ndarray | None = None,
    intensity: Any = None,
    voxel_size: Sequence[float] | None = None,
    block_planes: int | None = None,
    memory_budget: int = SLAB_MEMORY_BUDGET,
) -> ObjectTable:
    """Measure every object of the instance volume ``labels`` (see the module's notes).

    :param labels: the uint (z, y, x) instance volume: an array-like, a volume reader or a
        :class:`~biosegment.engine.volume_blocks.BlockSource`. Read once, slab by slab.
    :param class_of_id: the class of each id (index = id), e.g.
        :attr:`~biosegment.engine.instances.Instances.class_of_id`.
    :param intensity: the raw image, same shape, for the mean intensity.
    :param voxel_size: (z, y, x) in nm, for the ``*_nm`` columns.
    :param block_planes: z planes read at a time (None: 16, or as many fewer as
        ``memory_budget`` holds); a slab's work takes up to :data:`TABLE_BYTES_PER_VOXEL`
        bytes per voxel, and the table :data:`TABLE_BYTES_PER_OBJECT` bytes per object on top.
    :param memory_budget: bytes a slab's work may take; slabs over it (given planes, or a
        single plane) are refused before any reading, saying how many planes fit. The
        per-object sums have the same budget.
    :returns: the table, one row per id present.
    :raises InputError: when the image's shape differs, the voxel size is not three positive
        numbers, slabs exceed the memory budget, or an id has no class.
    """
    source = BlockSource.of(labels, name="labels")
    image = None
    if intensity is not None:
        image = BlockSource.of(intensity, name="intensity")
        image.check_shape(source.shape)
    block_planes = slab_planes(source.shape, block_planes, TABLE_BYTES_PER_VOXEL, memory_budget)
    measurer = ObjectMeasurer(
        source.shape,
        voxel_size=voxel_size,
        intensity=image is not None,
        memory_budget=memory_budget,
    )
    for z0, z1 in z_ranges(source.shape[0], block_planes):
        measurer.add(z0, source.planes(z0, z1), None if image is None else image.planes(z0, z1))
    return measurer.table(class_of_id)


def _table(
    moments: _Moments,
    boxes: BoxFinder,
    surfaces: SurfaceAreas,
    size: tuple[float, float, float] | None,
    intensity: bool,
    class_of_id: Sequence[int] | np.ndarray | None,
) -> ObjectTable:
    """The columns, from the sums over every slab."""
    sums = moments.sums
    present = np.flatnonzero(sums[0] > 0)
    present = present[present > 0]
    counts = sums[0, present]
    box = boxes.boxes(int(present[-1]) if len(present) else 0)[present]
    columns: dict[str, np.ndarray] = {"id": present.astype(np.int64)}
    columns["class"] = _classes(class_of_id, present)
    columns["voxels"] = counts.astype(np.int64)

    nan = np.full(len(present), np.nan)
    scale = np.asarray(size if size is not None else (np.nan,) * 3)
    centroid = np.stack([sums[1 + axis, present] / counts for axis in range(3)], axis=1)
    covariance = np.zeros((len(present), 3, 3))
    for row, (a, b) in enumerate(_PAIRS):
        value = sums[4 + row, present] / counts - centroid[:, a] * centroid[:, b]
        covariance[:, a, b] = covariance[:, b, a] = value
    major, minor = _axis_lengths(covariance)
    if size is not None:
        major_nm, minor_nm = _axis_lengths(covariance * np.outer(scale, scale))
    else:
        major_nm, minor_nm = nan, nan

    areas = surfaces.finish(int(present[-1]) if len(present) else 0)[:, present].T
    area_voxels = areas[:, 0]
    if size is not None:
        area_nm = areas[:, 1]
        volume_nm3 = counts * math.prod(size)
        sphericity = _sphericity(volume_nm3, area_nm)
    else:
        area_nm, volume_nm3 = nan, nan
        sphericity = _sphericity(counts, area_voxels)
    columns["volume_nm3"] = np.asarray(volume_nm3, np.float64) * np.ones(len(present))
    columns["surface_area_voxels"] = area_voxels.astype(np.float64).reshape(len(present))
    columns["surface_area_nm2"] = np.asarray(area_nm, np.float64) * np.ones(len(present))
    columns["sphericity"] = sphericity
    for axis, name in enumerate("zyx"):
        columns[f"centroid_{name}"] = centroid[:, axis]
        columns[f"centroid_{name}_nm"] = centroid[:, axis] * scale[axis]
    for axis, name in enumerate("zyx"):
        columns[f"bbox_{name}0"] = box[:, axis].astype(np.int64)
        columns[f"bbox_{name}1"] = box[:, 3 + axis].astype(np.int64)
        columns[f"bbox_{name}0_nm"] = box[:, axis] * scale[axis]
        columns[f"bbox_{name}1_nm"] = box[:, 3 + axis] * scale[axis]
    columns["mean_intensity"] = sums[10, present] / counts if intensity else nan
    columns["major_axis_length"] = major
    columns["minor_axis_length"] = minor
    columns["major_axis_length_nm"] = np.asarray(major_nm, np.float64) * np.ones(len(present))
    columns["minor_axis_length_nm"] = np.asarray(minor_nm, np.float64) * np.ones(len(present))
    return ObjectTable({name: columns[name] for name in COLUMNS})


def _sphericity(volume: np.ndarray, area: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.pi ** (1 / 3) * (6 * np.asarray(volume, np.float64)) ** (2 / 3) / area
    return np.where(area > 0, value, np.nan)


def _classes(class_of_id: Sequence[int] | np.ndarray | None, present: np.ndarray) -> np.ndarray:
    if class_of_id is None:
        return np.full(len(present), -1, np.int64)
    known = np.asarray(class_of_id, np.int64)
    if len(present) and int(present[-1]) >= len(known):
        raise InputError(
            f"object {int(present[-1])} has no class: classes are known for ids below {len(known)}",
            where="class_of_id",
        )
    return known[present]


def write_object_table(
    table: ObjectTable,
    path: Path,
    *,
    replace: bool = False,
    class_names: Mapping[int, str] | None = None,
) -> Path:
    """Write ``table`` as CSV at ``path`` (a header row, then one row per object).

    The file appears complete or not at all (written beside ``path``, then renamed). Unknown
    values are empty cells; a ``class`` of -1 means no class was given.

    :param replace: whether an existing file at ``path`` may be replaced.
    :param class_names: adds a ``class_name`` column after ``class``, for people reading it.
    :raises InputError: when ``path`` exists and ``replace`` is false.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise InputError("already exists; not replacing it", source=path)
    header = list(COLUMNS)
    if class_names is not None:
        header.insert(header.index("class") + 1, "class_name")
    with AtomicFile(path) as target:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        for number, row in enumerate(table.rows(), start=1):
            cells = {name: "" if row[name] is None else _text(row[name]) for name in COLUMNS}
            if class_names is not None:
                cells["class_name"] = class_names.get(
                    int(row["class"] if row["class"] is not None else -1), ""
                )
            writer.writerow(cells[name] for name in header)
            if number % 4096 == 0:
                target.file.write(text.getvalue().encode())
                text.seek(0)
                text.truncate()
        target.file.write(text.getvalue().encode())
    return path


def _text(value: int | float | None) -> str:
    return str(value) if isinstance(value, int) else repr(value)
