"""Plan a segmentation: windows, overlaps, blocks and the regions read at a time.

Pure arithmetic on shapes and settings, no pixels: the concrete window size and overlap per
axis for a network and a volume, how many windows go through the network at once, how many
slices and which rows and columns are read together so that one region's arrays stay within
a memory budget, and which windows each region needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from typing import Protocol

from biosegment.engine._windows import auto_axis_window, kept_ranges, round_up, window_starts
from biosegment.engine.unet import size_multiple
from biosegment.errors import InputError

__all__ = [
    "Plan",
    "make_plan",
    "window_grid",
    "accumulates",
    "window_jobs",
    "regions",
    "REGION_BUDGET",
]

# Largest automatic window per axis. 512x512 (2**18 voxels) per forward pass keeps every
# activation of an fm16 net small enough for the allocator to reuse memory instead of
# mapping fresh pages each time, which more than halves the speed of larger windows on CPU.
_LARGEST_WINDOW = {2: 512, 3: 64}
_WINDOW_VOXELS = 2**18
_DEFAULT_BLOCK_Z = 16
# Bytes one region's working arrays (raw, scaled, accumulators, labels) may take before a
# block is computed a few slices at a time, or its slices are cut into tiles.
REGION_BUDGET = 256 * 2**20


@dataclass(frozen=True, slots=True)
class Plan:
    """Settings made concrete for one network and one volume shape (always z, y, x)."""

    dims: int
    window: tuple[int, int, int]
    overlap: tuple[int, int, int]
    blend: str
    sigma_scale: float
    batch_size: int
    block_z: int
    chunk_z: int  # slices computed together (2-D networks: may be < block_z)
    tile: tuple[int, int]  # (rows, columns) of a region's core; the whole slice if it fits
    num_classes: int


class PlanSettings(Protocol):
    """What a plan is made from: the parts of :class:`~biosegment.engine.InferenceSettings`
    it reads (that module plans with this one, so it is not imported here)."""

    @property
    def window(self) -> tuple[int, ...] | None: ...
    @property
    def overlap(self) -> int | tuple[int, ...] | None: ...
    @property
    def blend(self) -> str: ...
    @property
    def sigma_scale(self) -> float: ...
    @property
    def batch_size(self) -> int | None: ...
    @property
    def block_z(self) -> int | None: ...


def make_plan(
    settings: PlanSettings,
    config: dict,
    shape: tuple[int, int, int],
    itemsize: int,
    probabilities: bool,
) -> Plan:
    """Make :class:`InferenceSettings` concrete for a network ``config`` and volume ``shape``.

    :raises InputError: for a window or overlap that does not fit the network.
    """
    dims, multiple = config["dims"], size_multiple(config["levels"])
    spatial = shape[1:] if dims == 2 else shape
    if settings.window is not None and len(settings.window) != dims:
        raise InputError(
            f"a {dims}-D network needs a window of {dims} sizes, got {list(settings.window)}",
            where="window",
        )
    overlaps = settings.overlap
    if isinstance(overlaps, tuple) and len(overlaps) != dims:
        raise InputError(f"overlap needs {dims} values, got {list(overlaps)}", where="overlap")
    window, overlap = [], []
    for axis, length in enumerate(spatial):
        wanted = overlaps[axis] if isinstance(overlaps, tuple) else overlaps
        if settings.window is None:
            largest = _LARGEST_WINDOW[dims]
            size, auto_overlap = auto_axis_window(
                length,
                largest=largest,
                multiple=multiple,
                overlap=min(2 ** (config["levels"] + 1), largest // 4),
            )
        else:
            size = round_up(int(settings.window[axis]), multiple)
            auto_overlap = 0 if size >= length else min(2 ** (config["levels"] + 1), size // 4)
        size_overlap = auto_overlap if wanted is None else int(wanted)
        if size_overlap >= size:
            raise InputError(
                f"overlap {size_overlap} must be smaller than the window {size}", where="overlap"
            )
        window.append(size)
        overlap.append(size_overlap)
    if dims == 2:
        window, overlap = [1, *window], [0, *overlap]
    window_voxels = math.prod(window)
    batch_size = settings.batch_size or max(1, _WINDOW_VOXELS // window_voxels)
    block_z = settings.block_z or (_DEFAULT_BLOCK_Z if dims == 2 else window[0])
    classes = config["num_classes"]
    chunk_z, tile = _region_size(
        shape,
        dims,
        block_z,
        window,
        overlap,
        itemsize + 4 + 1 + (classes + 1) * 4 + (classes if probabilities else 0),
    )
    return Plan(
        dims=dims,
        window=(window[0], window[1], window[2]),
        overlap=(overlap[0], overlap[1], overlap[2]),
        blend=settings.blend,
        sigma_scale=float(settings.sigma_scale),
        batch_size=batch_size,
        block_z=block_z,
        chunk_z=chunk_z,
        tile=tile,
        num_classes=classes,
    )


def _region_size(
    shape: tuple[int, int, int],
    dims: int,
    block_z: int,
    window: list[int],
    overlap: list[int],
    bytes_per_voxel: int,
) -> tuple[int, tuple[int, int]]:
    """Slices per chunk and (rows, columns) per tile so one region's arrays fit the budget.

    Whole slices of the whole block when they fit; else a 2-D network takes fewer slices at
    a time, and when even one slice is too big (or the network is 3-D) slices are cut into
    tiles, each read with ``overlap`` of context around it.
    """
    depth, height, width = shape
    voxels = max(1, REGION_BUDGET // bytes_per_voxel)
    region_z = min(depth, block_z + 2 * overlap[0])
    if region_z * height * width <= voxels:
        return block_z, (height, width)
    chunk_z = block_z
    if dims == 2:
        chunk_z = max(1, min(block_z, voxels // (height * width)))
        region_z = chunk_z
        if height * width <= voxels:
            return chunk_z, (height, width)
    area = max(1, voxels // region_z)
    side = math.isqrt(area)
    rows = min(height, max(window[1], side - 2 * overlap[1]))
    columns = min(width, max(window[2], area // (rows + 2 * overlap[1]) - 2 * overlap[2]))
    return chunk_z, (rows, columns)


def window_grid(shape: tuple[int, ...], plan: Plan) -> list[list[int]]:
    """Window start positions along each axis of a region of ``shape``."""
    return [
        window_starts(length, plan.window[axis], plan.overlap[axis])
        for axis, length in enumerate(shape)
    ]


def accumulates(starts: list[list[int]], plan: Plan) -> bool:
    """Whether windows overlap somewhere and the blend weighs them (else each voxel has one)."""
    if plan.blend == "crop":
        return False
    return any(len(s) > 1 and plan.window[axis] > 1 for axis, s in enumerate(starts))


def _intersect(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo < hi else None


def window_jobs(
    shape: tuple[int, ...], core: tuple[tuple[int, int], ...], plan: Plan
) -> list[tuple[tuple[int, ...], tuple]]:
    """The windows over a region of ``shape`` that contribute to its ``core``, each with the
    region box it answers for. Windows that only touch the context margin are skipped."""
    starts = window_grid(shape, plan)
    accumulate = accumulates(starts, plan)
    kept = [kept_ranges(s, plan.window[axis], shape[axis]) for axis, s in enumerate(starts)]
    jobs = []
    for index in product(*(range(len(s)) for s in starts)):
        start = tuple(starts[axis][i] for axis, i in enumerate(index))
        box = []
        for axis, i in enumerate(index):
            extent = (
                (start[axis], min(start[axis] + plan.window[axis], shape[axis]))
                if accumulate
                else kept[axis][i]
            )
            piece = _intersect(extent, core[axis])
            if piece is None:
                break
            box.append(piece)
        else:
            jobs.append((start, tuple(box)))
    return jobs


def _spans(length: int, size: int, halo: int) -> Iterator[tuple[int, int, int, int]]:
    """Pieces ``(core_a, core_b, read_a, read_b)`` of ``[0, length)``, read with context."""
    for a in range(0, length, size):
        b = min(a + size, length)
        yield a, b, max(0, a - halo), min(length, b + halo)


def regions(
    shape: tuple[int, int, int], plan: Plan, z0: int, z1: int
) -> Iterator[tuple[tuple[slice, slice, slice], tuple[tuple[int, int], ...]]]:
    """What to read for block ``[z0, z1)``, region by region: the (z, y, x) slices of the
    volume, and the core (the part the region answers for) in region coordinates."""
    depth, height, width = shape
    oz, oy, ox = plan.overlap
    for za, zb, _, _ in _spans(z1 - z0, plan.chunk_z, 0):
        ca, cb = z0 + za, z0 + zb
        rz0, rz1 = max(0, ca - oz), min(depth, cb + oz)
        for ya, yb, ry0, ry1 in _spans(height, plan.tile[0], oy):
            for xa, xb, rx0, rx1 in _spans(width, plan.tile[1], ox):
                yield (
                    (slice(rz0, rz1), slice(ry0, ry1), slice(rx0, rx1)),
                    ((ca - rz0, cb - rz0), (ya - ry0, yb - ry0), (xa - rx0, xb - rx0)),
                )
