"""Read and write a (z, y, x) volume one box at a time, whatever holds it.

The object engine (:mod:`~biosegment.engine.instances`, :mod:`~biosegment.engine.object_table`,
:mod:`~biosegment.engine.object_scores`) never loads a whole volume: it asks for slabs of z
planes, or for one object's box, and hands its results back slab by slab. What holds the data
varies (a numpy array or memory map, a Zarr or HDF5 dataset, one of BioSegment's volume
readers, a label writer, or a function of the caller's), so every source becomes a
:class:`BlockSource` and every destination a :class:`BlockSink` here, and the engine only ever
calls ``read(z, y, x)`` and ``write(z0, block)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from biosegment.errors import InputError

__all__ = [
    "BlockSource",
    "BlockSink",
    "ReadBox",
    "WriteBlock",
    "z_ranges",
    "check_slab_memory",
    "slab_planes",
    "check_id_memory",
    "DEFAULT_BLOCK_PLANES",
    "SLAB_MEMORY_BUDGET",
]

#: ``read(z, y, x)`` -> the array ``volume[z, y, x]`` for three slices.
ReadBox = Callable[[slice, slice, slice], np.ndarray]
#: ``write(z0, block)`` stores ``block`` as the planes ``z0 .. z0 + len(block) - 1``.
WriteBlock = Callable[[int, np.ndarray], None]

#: Planes per slab when a caller gives no other figure: 16 planes of 2048 x 2048 voxels are
#: 64 MiB of uint8, 256 MiB of the int32 labels that scipy computes from them.
DEFAULT_BLOCK_PLANES = 16
#: Bytes one slab's work may take unless the caller gives another budget.
SLAB_MEMORY_BUDGET = 2**30


def z_ranges(depth: int, planes: int) -> Iterator[tuple[int, int]]:
    """``(z0, z1)`` of consecutive slabs of ``planes`` planes covering ``0 .. depth``."""
    if planes < 1:
        raise InputError(f"a block needs at least one plane, got {planes}", where="block_planes")
    for z0 in range(0, depth, planes):
        yield z0, min(depth, z0 + planes)


def check_slab_memory(
    shape: tuple[int, int, int], block_planes: int, bytes_per_voxel: int, budget: int
) -> None:
    """Refuse, before any work, slabs whose working memory would exceed ``budget`` bytes.

    :param shape: the volume's (z, y, x) shape.
    :param block_planes: planes per slab.
    :param bytes_per_voxel: the work's bytes per slab voxel (each module's estimate).
    :param budget: the bytes allowed.
    :raises InputError: naming ``block_planes`` and saying how many planes fit, if any.
    """
    if block_planes < 1:
        raise InputError(
            f"a block needs at least one plane, got {block_planes}", where="block_planes"
        )
    plane = shape[1] * shape[2] * bytes_per_voxel
    planes = min(block_planes, max(1, shape[0]))
    if planes * plane <= budget:
        return
    mib = 2**20
    fit = budget // plane if plane else 0
    advice = (
        f"{fit} planes fit" if fit >= 1 else f"not even one plane of {shape[1]} x {shape[2]} fits"
    )
    raise InputError(
        f"{planes} planes of {shape[1]} x {shape[2]} voxels take about {planes * plane // mib} MiB,"
        f" over the budget of {budget // mib} MiB; {advice}",
        where="block_planes",
    )


def slab_planes(
    shape: tuple[int, int, int], block_planes: int | None, bytes_per_voxel: int, budget: int
) -> int:
    """The planes per slab to use: ``block_planes`` when given (and within ``budget``), else
    :data:`DEFAULT_BLOCK_PLANES` or as many fewer as the budget holds.

    :param shape: the volume's (z, y, x) shape.
    :param block_planes: the caller's choice, or None to choose.
    :param bytes_per_voxel: the work's bytes per slab voxel.
    :param budget: the bytes allowed.
    :returns: planes per slab, at least 1.
    :raises InputError: when the given planes, or even one plane, exceed the budget.
    """
    if block_planes is None:
        plane = max(1, shape[1] * shape[2] * bytes_per_voxel)
        block_planes = max(1, min(DEFAULT_BLOCK_PLANES, budget // plane))
    check_slab_memory(shape, block_planes, bytes_per_voxel, budget)
    return block_planes


def check_id_memory(largest_id: int, bytes_per_id: int, budget: int, *, where: str) -> None:
    """Refuse ids so large that arrays indexed by id would exceed ``budget`` bytes.

    Per-object sums are kept in arrays indexed by id, which is compact for ids numbered
    1, 2, 3, ... (as :func:`~biosegment.engine.instances.label_instances` numbers them) but
    not for a volume whose few objects carry ids in the billions.

    :param largest_id: the largest id met so far.
    :param bytes_per_id: the bytes kept per id.
    :param budget: the bytes allowed.
    :param where: the volume, for the error.
    :raises InputError: saying which id is too large and what to do.
    """
    needed = (int(largest_id) + 1) * bytes_per_id
    if needed > budget:
        raise InputError(
            f"id {largest_id} would need {needed // 2**20} MiB of per-object sums, over the "
            f"budget of {budget // 2**20} MiB; number the objects 1, 2, 3, ... (as "
            f"label_instances does) or allow more memory",
            where=where,
        )


@dataclass(frozen=True, slots=True)
class BlockSource:
    """A (z, y, x) volume that is read one box at a time.

    Build one with :meth:`of` from an array-like (anything with ``shape`` and slicing: numpy
    arrays, memory maps, Zarr and HDF5 datasets), from a BioSegment volume reader (its
    ``read_block``), or directly from a ``read`` function and the volume's shape.
    """

    read_box: ReadBox
    shape: tuple[int, int, int]
    name: str = "volume"

    @classmethod
    def of(cls, volume: Any, *, name: str = "volume") -> BlockSource:
        """Wrap ``volume`` (a :class:`BlockSource` is returned as it is)."""
        if isinstance(volume, BlockSource):
            return volume
        shape = tuple(int(n) for n in getattr(volume, "shape", ()))
        if len(shape) != 3:
            raise InputError(f"expected a (z, y, x) volume, got shape {shape}", where=name)
        if hasattr(volume, "read_block"):

            def read_block(z: slice, y: slice, x: slice) -> np.ndarray:
                return volume.read_block(z.start, z.stop, y, x)

            return cls(read_block, (shape[0], shape[1], shape[2]), name)
        if not hasattr(volume, "__getitem__"):
            raise InputError("expected an array-like volume or a volume reader", where=name)

        def read_slices(z: slice, y: slice, x: slice) -> np.ndarray:
            return np.asarray(volume[z, y, x])

        return cls(read_slices, (shape[0], shape[1], shape[2]), name)

    def read(self, z: slice, y: slice | None = None, x: slice | None = None) -> np.ndarray:
        """``volume[z, y, x]`` with explicit bounds (all rows and columns by default)."""
        z0, z1, _ = z.indices(self.shape[0])
        y0, y1, _ = (y or slice(None)).indices(self.shape[1])
        x0, x1, _ = (x or slice(None)).indices(self.shape[2])
        block = np.asarray(self.read_box(slice(z0, z1), slice(y0, y1), slice(x0, x1)))
        expected = (z1 - z0, y1 - y0, x1 - x0)
        if block.shape != expected:
            raise InputError(
                f"a read of box {expected} returned shape {block.shape}", where=self.name
            )
        return block

    def planes(self, z0: int, z1: int) -> np.ndarray:
        """The whole planes ``z0 .. z1 - 1``."""
        return self.read(slice(z0, z1))

    def check_shape(self, shape: tuple[int, int, int]) -> None:
        """Raise an :class:`InputError` naming this volume when its shape is not ``shape``."""
        if tuple(self.shape) != tuple(shape):
            raise InputError(
                f"has shape {tuple(self.shape)} but {tuple(shape)} was expected", where=self.name
            )


@dataclass(frozen=True, slots=True)
class BlockSink:
    """Where slabs of results go: ``write(z0, block)``.

    Build one with :meth:`of` from a label writer (anything with ``write_block``, such as
    :class:`~biosegment.volumes.LabelVolumeWriter`), from an array-like that takes slice
    assignment (numpy arrays, memory maps, Zarr datasets), or from a function.
    """

    write: WriteBlock

    @classmethod
    def of(cls, target: Any) -> BlockSink:
        """Wrap ``target`` (a :class:`BlockSink` is returned as it is)."""
        if isinstance(target, BlockSink):
            return target
        if hasattr(target, "write_block"):
            return cls(target.write_block)
        if hasattr(target, "__setitem__"):

            def assign(z0: int, block: np.ndarray) -> None:
                target[z0 : z0 + block.shape[0]] = block

            return cls(assign)
        if callable(target):
            return cls(target)
        raise InputError("expected a label writer, an array or a function", where="output")
