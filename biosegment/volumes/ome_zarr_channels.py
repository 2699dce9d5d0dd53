"""Write a (c, z, y, x) image, such as per-class probabilities, as one OME-Zarr multiscale image.

Downstream tools (ilastik, plantseg, multicut workflows) take class probabilities as an image
with a channel axis. :class:`ChannelZarrWriter` streams z-blocks of all channels into such an
image: uint8 values, a ``c`` axis of type ``channel`` before z, y and x, an ``omero`` entry
naming and colouring each channel, and a resolution pyramid whose levels average 2x2 pixels
(probabilities blend; class ids never would). As :class:`~biosegment.volumes.ome_zarr_writer.
OmeZarrWriter` does for label images, it buffers one chunk's depth of slices so that every
chunk is written once, writes into a hidden folder beside the destination and renames it into
place on :meth:`~ChannelZarrWriter.commit`; an error or :meth:`~ChannelZarrWriter.abort` leaves
a previous store untouched.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biosegment.volumes.atomic import temporary_name_for
from biosegment.volumes.ome_ngff import NGFF_VERSIONS, channel_attributes, multiscale_attributes
from biosegment.volumes.ome_zarr_writer import (
    DEFAULT_CHUNKS,
    array_options,
    mean_2x2,
    new_group,
    pyramid_shapes,
    replace_folder,
)

__all__ = ["ChannelZarrWriter"]


class ChannelZarrWriter:
    """Stream a uint8 (c, z, y, x) image into an OME-Zarr store at ``path``, atomically.

    Write z-blocks of every channel in order with :meth:`write_block`, then :meth:`commit`; as
    a context manager it commits when the block ends normally and aborts when it raises.

    :param path: the store to create (``probabilities.ome.zarr``).
    :param shape: (c, z, y, x) of level 0.
    :param channel_names: one name per channel (the classes' names).
    :param colors: one ``#rrggbb`` colour per channel (None: white).
    :param voxel_size: (z, y, x) in nm, written as the axes' scale with unit ``nanometer``.
    :param version: OME-Zarr version, ``0.5`` (Zarr v3) or ``0.4`` (Zarr v2).
    :param chunks: (z, y, x) chunk shape of each channel, clipped to the volume.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int, int],
        *,
        channel_names: Sequence[str],
        colors: Sequence[object] | None = None,
        voxel_size: tuple[float, float, float] | None = None,
        version: str = "0.5",
        chunks: tuple[int, int, int] = DEFAULT_CHUNKS,
    ):
        self.path = Path(path)
        if len(shape) != 4 or min(int(s) for s in shape) < 1:
            raise ValueError(f"{self.path}: shape must be four positive sizes (c, z, y, x)")
        self.shape = tuple(int(s) for s in shape)
        if len(channel_names) != self.shape[0]:
            raise ValueError(
                f"{self.path}: {len(channel_names)} channel names for {self.shape[0]} channels"
            )
        if version not in NGFF_VERSIONS:
            raise ValueError(
                f"{self.path}: OME-Zarr version must be one of {', '.join(NGFF_VERSIONS)}"
            )
        if voxel_size is not None and min(float(v) for v in voxel_size) <= 0:
            raise ValueError(f"{self.path}: voxel size must be positive, got {voxel_size}")
        self.channel_names = [str(n) for n in channel_names]
        self.colors = list(colors) if colors is not None else [None] * self.shape[0]
        self.voxel_size = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        self.version = version
        space = self.shape[1:]
        self.level_shapes = pyramid_shapes(space)
        self.chunks = tuple(max(1, min(int(c), s)) for c, s in zip(chunks, space))
        self.temp_path = temporary_name_for(self.path)
        self._pending: list[np.ndarray] = []  # (c, y, x) slices not yet written
        self._next_z = 0
        self._done = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._arrays = self._create_arrays()
        except BaseException:
            self._throw_away()
            raise

    def _create_arrays(self) -> list:
        group = new_group(self.temp_path, self.version)
        arrays = []
        for index, level_shape in enumerate(self.level_shapes):
            chunks = (1, *(min(c, s) for c, s in zip(self.chunks, level_shape)))
            arrays.append(
                group.create_array(
                    str(index),
                    shape=(self.shape[0], *level_shape),
                    chunks=chunks,
                    dtype="uint8",
                    **array_options(self.version, ["c", "z", "y", "x"]),
                )
            )
        self._group = group
        return arrays

    @property
    def finished(self) -> bool:
        return self._done

    def write_block(self, z0: int, block: np.ndarray) -> None:
        """Write ``block`` (c, z, y, x; uint8) as slices ``z0 .. z0 + block.shape[1] - 1``."""
        if self._done:
            raise ValueError(f"{self.path}: writer already committed or aborted")
        block = np.asarray(block)
        c, _, y, x = self.shape
        if block.ndim != 4 or block.shape[0] != c or block.shape[2:] != (y, x):
            raise ValueError(
                f"{self.path}: a block must be (c, z, y, x) = ({c}, z, {y}, {x}), got {block.shape}"
            )
        if block.dtype != np.uint8:
            raise ValueError(f"{self.path}: probabilities must be uint8, got {block.dtype}")
        if z0 != self._next_z:
            raise ValueError(
                f"{self.path}: blocks must be written in order; expected slice "
                f"{self._next_z}, got {z0}"
            )
        if z0 + block.shape[1] > self.shape[1]:
            raise ValueError(
                f"{self.path}: the block ends past the volume's {self.shape[1]} slices"
            )
        for offset in range(block.shape[1]):
            self._pending.append(block[:, offset])
            self._next_z += 1
            if len(self._pending) == self.chunks[0] or self._next_z == self.shape[1]:
                self._flush()

    def _flush(self) -> None:
        z1 = self._next_z
        z0 = z1 - len(self._pending)
        level = np.stack(self._pending, axis=1)  # (c, z, y, x)
        self._pending = []
        try:
            for index, target in enumerate(self._arrays):
                if index:
                    level = mean_2x2(level)
                target[:, z0:z1] = level
        except BaseException:
            self.abort()
            raise

    def commit(self) -> Path:
        """Write the metadata and move the store into place; missing slices abort instead."""
        if self._done:
            raise ValueError(f"{self.path}: writer already committed or aborted")
        if self._next_z != self.shape[1]:
            self.abort()
            raise ValueError(
                f"{self.path}: only {self._next_z} of {self.shape[1]} slices were written; "
                "the incomplete store was discarded"
            )
        try:
            self._group.attrs.update(self._attributes())
            replace_folder(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; ``path`` keeps its previous content."""
        if not self._done:
            self._throw_away()

    def _attributes(self) -> dict:
        factors = [(1.0, float(2**i), float(2**i)) for i in range(len(self.level_shapes))]
        attributes = multiscale_attributes(
            self.version,
            level_paths=[str(i) for i in range(len(self._arrays))],
            level_factors=factors,
            voxel_size=self.voxel_size,
            name=self.path.name.removesuffix(".ome.zarr") or self.path.name,
            downsampling="mean",
            channel_axis=True,
        )
        namespace = attributes["ome"] if self.version == "0.5" else attributes
        namespace["omero"] = channel_attributes(self.channel_names, self.colors)
        return attributes

    def _throw_away(self) -> None:
        self._done = True
        self._pending = []
        shutil.rmtree(self.temp_path, ignore_errors=True)

    def __enter__(self) -> ChannelZarrWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()
