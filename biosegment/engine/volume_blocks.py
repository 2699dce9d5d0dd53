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
    "DEFAULT_BLOCK_PLANES",
]

#: ``read(z, y, x)`` -> the array ``volume[z, y, x]`` for three slices.
ReadBox = Callable[[slice, slice, slice], np.ndarray]
#: ``write(z0, block)`` stores ``block`` as the planes ``z0 .. z0 + len(block) - 1``.
WriteBlock = Callable[[int, np.ndarray], None]

#: Planes per slab when a caller gives no other figure: 16 planes of 2048 x 2048 voxels are
#: 64 MiB of uint8, 256 MiB of the int32 labels that scipy computes from them.
DEFAULT_BLOCK_PLANES = 16


def z_ranges(depth: int, planes: int) -> Iterator[tuple[int, int]]:
    """``(z0, z1)`` of consecutive slabs of ``planes`` planes covering ``0 .. depth``."""
    if planes < 1:
        raise InputError(f"a block needs at least one plane, got {planes}", where="block_planes")
    for z0 in range(0, depth, planes):
        yield z0, min(depth, z0 + planes)


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
