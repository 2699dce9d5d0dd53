"""Plan a segmentation: windows, overlaps, blocks and the regions read at a time.

Pure arithmetic on shapes and settings, no pixels: the concrete window size and overlap per
axis for a network and a volume, how many windows go through the network at once, how many
slices make a block, how many slices and which rows and columns are read together, and which
windows each region needs. Blocks, regions and batches are sized so that one block task's
arrays stay within a memory budget (:mod:`biosegment.engine._block_memory`), whatever the
zoom to the model's pixel size: a zoomed region is cut into smaller tiles, and settings a
person chose that cannot fit are refused with what would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from typing import Protocol

from biosegment.engine._block_memory import (
    MEMORY_BUDGET,
    BlockMemory,
    Shares,
    network_bytes_per_voxel,
    output_bytes_per_voxel,
    region_bytes_per_voxel,
)
from biosegment.engine._windows import auto_axis_window, kept_ranges, round_up, window_starts
from biosegment.engine.pixel_size import zoomed_shape
from biosegment.engine.unet import size_multiple
from biosegment.errors import InputError

__all__ = [
    "Plan",
    "make_plan",
    "window_grid",
    "accumulates",
    "window_jobs",
    "regions",
]

# Largest automatic window per axis. 512x512 (2**18 voxels) per forward pass keeps every
# activation of an fm16 net small enough for the allocator to reuse memory instead of
# mapping fresh pages each time, which more than halves the speed of larger windows on CPU.
_LARGEST_WINDOW = {2: 512, 3: 64}
_WINDOW_VOXELS = 2**18
_DEFAULT_BLOCK_Z = 16
_MIB = 2**20


@dataclass(frozen=True, slots=True)
class Plan:
    """Settings made concrete for one network and one volume shape (always z, y, x).

    ``window``, ``overlap`` and ``batch_size`` are on the grid the network sees: the
    volume's, zoomed in y and x by ``zoom`` when it is set. Blocks, chunks, tiles and the
    ``context`` read around a tile are on the volume's own grid.
    """

    dims: int
    window: tuple[int, int, int]
    overlap: tuple[int, int, int]
    blend: str
    sigma_scale: float
    batch_size: int
    block_z: int
    chunk_z: int  # slices computed together (2-D networks: may be < block_z)
    tile: tuple[int, int]  # (rows, columns) of a region's core; the whole slice if it fits
    context: tuple[int, int, int]  # voxels read beyond a chunk's or tile's edge, per axis
    num_classes: int
    zoom: float | None
    memory: BlockMemory  # the estimate the sizes above were chosen to keep within budget


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
    @property
    def zoom(self) -> float | None: ...
    @property
    def memory_budget(self) -> int | None: ...


def make_plan(
    settings: PlanSettings,
    config: dict,
    shape: tuple[int, int, int],
    itemsize: int,
    probabilities: bool,
) -> Plan:
    """Make :class:`InferenceSettings` concrete for a network ``config`` and volume ``shape``.

    :raises InputError: for a window or overlap that does not fit the network, and for a
        ``batch_size`` or ``block_z`` whose arrays would not fit the memory budget.
    """
    dims, levels = config["dims"], config["levels"]
    zoom = settings.zoom
    shares = Shares.of(settings.memory_budget or MEMORY_BUDGET)
    network_shape = shape if zoom is None else zoomed_shape(shape, zoom)
    window, overlap = _windows(settings, config, network_shape)
    context = _context(window, overlap, levels, zoom)
    batch_size = _batch_size(settings, config, window, shares.network)
    classes = config["num_classes"]
    output_bytes = output_bytes_per_voxel(classes, probabilities)
    block_z = _block_z(settings, dims, window, shape, zoom, output_bytes, shares.outputs)
    region_bytes = region_bytes_per_voxel(itemsize, classes, probabilities, zoom)
    # A tile is at least one network window wide, counted on the volume's grid.
    smallest = tuple(window[a] if zoom is None else math.ceil(window[a] / zoom) for a in (1, 2))
    chunk_z, tile = _region_size(
        shape, dims, block_z, smallest, context, region_bytes, shares.region
    )
    depth, height, width = shape
    read = (
        min(depth, chunk_z + 2 * context[0]),
        min(height, tile[0] + 2 * context[1]),
        min(width, tile[1] + 2 * context[2]),
    )
    memory = BlockMemory(
        outputs=min(block_z, depth) * height * width * output_bytes,
        region=math.prod(read) * region_bytes,
        network=batch_size * math.prod(window) * network_bytes_per_voxel(config),
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
        context=context,
        num_classes=classes,
        zoom=zoom,
        memory=memory,
    )


def _windows(
    settings: PlanSettings, config: dict, shape: tuple[int, ...]
) -> tuple[list[int], list[int]]:
    """Window and overlap per axis (z, y, x) on the grid the network sees."""
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
    return window, overlap


def _context(
    window: list[int], overlap: list[int], levels: int, zoom: float | None
) -> tuple[int, int, int]:
    """Voxels of the volume read beyond a tile's edge so its border is computed as inside.

    Unzoomed, that is the windows' overlap. Zoomed, a tile's border must lie at least the
    network's usual margin (``2 ** (levels + 1)``) inside the zoomed region even where one
    window covers the whole slice, counted back on the volume's grid.
    """
    if zoom is None:
        return (overlap[0], overlap[1], overlap[2])
    margin = [max(o, min(2 ** (levels + 1), w // 4)) for w, o in zip(window, overlap)]
    return (overlap[0], math.ceil(margin[1] / zoom), math.ceil(margin[2] / zoom))


def _batch_size(settings: PlanSettings, config: dict, window: list[int], share: int) -> int:
    """Windows per forward pass: the default fills 2**18 voxels as far as memory allows."""
    window_voxels = math.prod(window)
    per_window = window_voxels * network_bytes_per_voxel(config)
    fits = max(1, share // per_window)
    if settings.batch_size is None:
        return max(1, min(_WINDOW_VOXELS // window_voxels, fits))
    if settings.batch_size > fits:
        size = "x".join(str(v) for v in (window[1:] if config["dims"] == 2 else window))
        raise InputError(
            f"{settings.batch_size} windows of {size} per batch need about "
            f"{settings.batch_size * per_window // _MIB} MiB for the network's activations; "
            f"at most {fits} fit in {share // _MIB} MiB",
            where="batch_size",
        )
    return int(settings.batch_size)


def _block_z(
    settings: PlanSettings,
    dims: int,
    window: list[int],
    shape: tuple[int, int, int],
    zoom: float | None,
    output_bytes: int,
    share: int,
) -> int:
    """Slices per block, the unit of resuming and of work shared between workers.

    A block's results (on the volume's grid) must fit ``share``. The default also holds
    fewer slices when they are zoomed up: each zoomed slice is ``zoom ** 2`` times the work,
    and a block should cost about as much as 16 plain slices to compute, resume or hand out.
    """
    depth, height, width = shape
    slice_bytes = height * width * output_bytes
    fits = max(1, share // slice_bytes)
    if settings.block_z is not None:
        wanted = int(settings.block_z)
        if min(wanted, depth) > fits:
            raise InputError(
                f"{wanted} slices per block need about "
                f"{min(wanted, depth) * slice_bytes // _MIB} MiB for the results of "
                f"{height}x{width} slices; at most {fits} slices fit in {share // _MIB} MiB",
                where="block_z",
            )
        return wanted
    if dims == 3:
        default = window[0]
    else:
        default = _DEFAULT_BLOCK_Z
        if zoom is not None and zoom > 1:
            default = max(1, int(_DEFAULT_BLOCK_Z / (zoom * zoom)))
    return min(default, fits)


def _region_size(
    shape: tuple[int, int, int],
    dims: int,
    block_z: int,
    smallest: tuple[int, ...],
    context: tuple[int, int, int],
    bytes_per_voxel: int,
    budget: int,
) -> tuple[int, tuple[int, int]]:
    """Slices per chunk and (rows, columns) per tile so one region's arrays fit ``budget``.

    Whole slices of the whole block when they fit; else a 2-D network takes fewer slices at
    a time, and when even one slice is too big (or the network is 3-D) slices are cut into
    tiles of at least ``smallest`` (rows, columns), each read with ``context`` around it.
    """
    depth, height, width = shape
    voxels = max(1, budget // bytes_per_voxel)
    region_z = min(depth, block_z + 2 * context[0])
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
    rows = min(height, max(smallest[0], side - 2 * context[1]))
    columns = min(width, max(smallest[1], area // (rows + 2 * context[1]) - 2 * context[2]))
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
    oz, oy, ox = plan.context
    for za, zb, _, _ in _spans(z1 - z0, plan.chunk_z, 0):
        ca, cb = z0 + za, z0 + zb
        rz0, rz1 = max(0, ca - oz), min(depth, cb + oz)
        for ya, yb, ry0, ry1 in _spans(height, plan.tile[0], oy):
            for xa, xb, rx0, rx1 in _spans(width, plan.tile[1], ox):
                yield (
                    (slice(rz0, rz1), slice(ry0, ry1), slice(rx0, rx1)),
                    ((ca - rz0, cb - rz0), (ya - ry0, yb - ry0), (xa - rx0, xb - rx0)),
                )
