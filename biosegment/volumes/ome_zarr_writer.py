"""Write a volume as an OME-Zarr multiscale image, slice by slice, without exposing half a store.

Segmentations are written as OME-Zarr label images (``image-label`` metadata with the class
names and colours) with a resolution pyramid that halves y and x per level until a slice fits
one 512-pixel viewer tile; labels are downsampled by taking every second voxel, so class ids
are never blended, and raw images (the viewer's pyramid cache) may use the 2x2 mean instead.
Slices arrive in order and are buffered until a chunk's worth of slices is complete, so every
chunk is written once. Everything goes into a hidden ``.part`` folder beside the destination,
renamed into place by :meth:`OmeZarrWriter.commit`; an error or :meth:`~OmeZarrWriter.abort`
removes it and leaves a previous store untouched. Version 0.5 (Zarr v3) is the default; 0.4
(Zarr v2, ``/``-separated chunk keys) is there for tools that have not moved on yet. Axes
carry names, types and nanometre units, so napari and Fiji show the data calibrated.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from biosegment.volumes.atomic import temporary_name_for
from biosegment.volumes.ome_ngff import NGFF_VERSIONS, label_attributes, multiscale_attributes
from biosegment.volumes.slice_writer import SliceWriter

__all__ = [
    "OmeZarrWriter",
    "write_ome_zarr",
    "replace_folder",
    "new_group",
    "mean_2x2",
    "array_options",
    "pyramid_shapes",
    "DOWNSAMPLING",
    "DEFAULT_CHUNKS",
    "TOP_LEVEL_SIZE",
]

#: ``nearest`` keeps every second voxel (labels); ``mean`` averages 2x2 pixels (raw images).
DOWNSAMPLING = ("nearest", "mean")
#: Chunk shape (z, y, x): one viewer tile per chunk plane, a few slices deep.
DEFAULT_CHUNKS = (8, 512, 512)
#: The pyramid stops at the first level whose slices fit in this many pixels per side.
TOP_LEVEL_SIZE = 512


def pyramid_shapes(
    shape: Sequence[int], *, top_size: int = TOP_LEVEL_SIZE, max_levels: int | None = None
) -> list[tuple[int, int, int]]:
    """Shapes of the levels of an xy pyramid over a (z, y, x) volume, level 0 first."""
    z, y, x = (int(v) for v in shape)
    shapes = [(z, y, x)]
    while max(shapes[-1][1:]) > top_size and (max_levels is None or len(shapes) < max_levels):
        step = 2 ** len(shapes)
        shapes.append((z, math.ceil(y / step), math.ceil(x / step)))
    return shapes


def _zarr():
    import zarr

    return zarr


def mean_2x2(block: np.ndarray) -> np.ndarray:
    """Halve the last two axes (y, x) of ``block`` by averaging 2x2 pixels, in its own dtype
    (integers rounded); an odd last row or column is averaged with itself."""
    pad = [(0, 0)] * (block.ndim - 2) + [(0, block.shape[-2] % 2), (0, block.shape[-1] % 2)]
    padded = np.pad(block, pad, mode="edge").astype(np.float32)
    mean = (
        padded[..., 0::2, 0::2]
        + padded[..., 1::2, 0::2]
        + padded[..., 0::2, 1::2]
        + padded[..., 1::2, 1::2]
    ) * np.float32(0.25)
    if block.dtype.kind == "f":
        return mean.astype(block.dtype)
    return np.rint(mean).astype(block.dtype)


def new_group(path: Path, version: str):
    """A new Zarr group at ``path`` in the format of OME-Zarr ``version`` (v3 for 0.5)."""
    zarr = _zarr()
    zarr_format = 3 if version == "0.5" else 2
    return zarr.open_group(zarr.storage.LocalStore(str(path)), mode="w-", zarr_format=zarr_format)


def array_options(version: str, axes: Sequence[str]) -> dict:
    """``create_array`` options for one level of an OME-Zarr ``version`` image with ``axes``."""
    options: dict = {"fill_value": 0}
    if version == "0.5":
        options["dimension_names"] = list(axes)
        return options
    import numcodecs

    # Blosc is what every Zarr v2 reader (Fiji's included) decodes; "/" keys are what
    # OME-Zarr 0.4 requires.
    options["compressors"] = [
        numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
    ]
    options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return options


class OmeZarrWriter(SliceWriter):
    """Stream a (z, y, x) volume into an OME-Zarr store at ``path``, atomically.

    Write slices in order with :meth:`write_slice` or :meth:`write_block`, then
    :meth:`commit`; as a context manager it commits when the block ends normally and aborts
    when it raises.

    :param path: the store to create (``labels.ome.zarr``).
    :param shape: (z, y, x) of level 0.
    :param dtype: uint8 (class ids, the default), uint16 or float32.
    :param voxel_size: (z, y, x) in nm, written as the axes' scale with unit ``nanometer``.
    :param classes: ``{"id", "name", "color"}`` per class: makes it a label image.
    :param version: OME-Zarr version, ``0.5`` (Zarr v3) or ``0.4`` (Zarr v2).
    :param chunks: chunk shape, clipped to the volume.
    :param downsampling: ``nearest`` or ``mean`` (label images always use ``nearest``).
    :param max_levels: cap on the number of levels (default: until a slice fits one tile).
    :param name: the image's name in the metadata (default: the file name).
    """

    output_kind = "store"

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int],
        *,
        dtype: str = "uint8",
        voxel_size: tuple[float, float, float] | None = None,
        classes: Sequence[Mapping] | None = None,
        version: str = "0.5",
        chunks: tuple[int, int, int] = DEFAULT_CHUNKS,
        downsampling: str = "nearest",
        max_levels: int | None = None,
        name: str | None = None,
    ):
        super().__init__(path, shape, dtype)
        if version not in NGFF_VERSIONS:
            raise ValueError(
                f"{self.path}: OME-Zarr version must be one of "
                f"{', '.join(NGFF_VERSIONS)}, not {version!r}"
            )
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"{self.path}: downsampling must be one of {', '.join(DOWNSAMPLING)}")
        if voxel_size is not None and min(float(v) for v in voxel_size) <= 0:
            raise ValueError(f"{self.path}: voxel size must be positive, got {voxel_size}")
        self.version = version
        self.classes = list(classes) if classes is not None else None
        self.downsampling = "nearest" if self.classes is not None else downsampling
        self.voxel_size = None if voxel_size is None else tuple(float(v) for v in voxel_size)
        self.level_shapes = pyramid_shapes(self.shape, max_levels=max_levels)
        self.chunks = tuple(max(1, min(int(c), s)) for c, s in zip(chunks, self.shape))
        self.name = name or _image_name(self.path)
        self.temp_path = temporary_name_for(self.path)
        self._pending: list[np.ndarray] = []
        self._done = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._arrays = self._create_arrays()
        except BaseException:
            self._throw_away()
            raise

    # -- creation ------------------------------------------------------------------------------

    def _create_arrays(self) -> list:
        group = new_group(self.temp_path, self.version)
        arrays = []
        for index, level_shape in enumerate(self.level_shapes):
            chunks = tuple(min(c, s) for c, s in zip(self.chunks, level_shape))
            arrays.append(
                group.create_array(
                    str(index),
                    shape=level_shape,
                    chunks=chunks,
                    dtype=self.dtype,
                    **array_options(self.version, ["z", "y", "x"]),
                )
            )
        self._group = group
        return arrays

    # -- writing -------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done

    def _write_plane(self, z: int, plane: np.ndarray) -> None:
        self._pending.append(plane)
        if len(self._pending) == self.chunks[0] or z + 1 == self.shape[0]:
            self._flush(z + 1)

    def _flush(self, z1: int) -> None:
        """Write the buffered slices (one chunk deep, ending before ``z1``) to every level."""
        z0 = z1 - len(self._pending)
        level = np.stack(self._pending)
        self._pending = []
        try:
            for index, target in enumerate(self._arrays):
                if index:
                    level = self._downsample(level, self.level_shapes[index])
                target[z0:z1] = level
        except BaseException:
            self.abort()
            raise

    def _downsample(self, block: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        if self.downsampling == "nearest":
            return np.ascontiguousarray(block[:, ::2, ::2])
        mean = mean_2x2(block)
        assert mean.shape[1:] == shape[1:]
        return mean

    # -- finishing -----------------------------------------------------------------------------

    def _complete(self) -> Path:
        """Write the metadata and move the store into place."""
        try:
            self._group.attrs.update(self._attributes())
            replace_folder(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def _attributes(self) -> dict:
        # Level i holds every 2**i-th row and column (sizes rounded up).
        factors = [(1.0, float(2**i), float(2**i)) for i in range(len(self.level_shapes))]
        attributes = multiscale_attributes(
            self.version,
            level_paths=[str(i) for i in range(len(self._arrays))],
            level_factors=factors,
            voxel_size=self.voxel_size,
            name=self.name,
            downsampling=self.downsampling,
        )
        if self.classes is not None:
            namespace = attributes["ome"] if self.version == "0.5" else attributes
            namespace["image-label"] = label_attributes(self.version, self.classes)
        return attributes

    def _throw_away(self) -> None:
        self._done = True
        self._pending = []
        shutil.rmtree(self.temp_path, ignore_errors=True)


def replace_folder(source: Path, destination: Path) -> None:
    """Rename the finished store over ``destination``.

    A folder cannot atomically replace a non-empty one, so a previous store is first renamed
    aside (readers then briefly see no store, never a mixed one) and removed afterwards.
    """
    old = None
    if destination.exists():
        old = temporary_name_for(destination)
        os.replace(destination, old)
    try:
        os.replace(source, destination)
    except BaseException:
        if old is not None:
            os.replace(old, destination)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_ome_zarr(path: Path, array: np.ndarray, **options) -> Path:
    """Write a whole (z, y, x) array (2-D: one slice) through :class:`OmeZarrWriter`.

    ``options`` are the writer's keyword arguments; ``dtype`` defaults to the array's own.
    """
    volume = np.asarray(array)
    if volume.ndim == 2:
        volume = volume[np.newaxis]
    if volume.ndim != 3:
        raise ValueError(f"{path}: expected a 2-D or 3-D array, got shape {volume.shape}")
    options.setdefault("dtype", "uint8" if volume.dtype == np.bool_ else volume.dtype.name)
    with OmeZarrWriter(Path(path), volume.shape, **options) as writer:
        writer.write_block(0, volume)
    return Path(path)


def _image_name(path: Path) -> str:
    """``labels.ome.zarr`` -> ``labels``."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name
