"""Read Zarr arrays (``zarr``) and OME-Zarr multiscale images (``omezarr``), lazily, by chunk.

A Zarr store is a folder (``volume.zarr``) in format v2 or v3; zarr-python reads both. An
OME-Zarr image (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3, or the bioformats2raw layout) is a group
whose metadata lists its resolution levels: the reader reads level 0 and exposes every level
through ``levels``/``level(i)``, with the voxel size from the scale transformations. A plain
array, or a group holding arrays (picked by ``key``, else by :func:`~biosegment.volumes.
containers.choose_key`), is read as one level; a ``resolution`` attribute (nm, z y x, as
funlib/daisy write it) gives its voxel size. Reading a block decodes only the chunks it
covers; chunks never written read as the array's fill value, so sparse volumes cost nothing
where they are empty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.volumes.array_reader import (
    ArrayVolumeReader,
    LevelSource,
    StackLayout,
    stack_layout,
)
from biosegment.volumes.base import PyramidLevel, VolumeInfo
from biosegment.volumes.containers import choose_key, is_zarr_folder, normalise_key
from biosegment.volumes.failures import checked_dtype, volume_errors
from biosegment.volumes.ome_ngff import Multiscale, is_bioformats2raw, read_multiscale
from biosegment.volumes.zarr_deadline import DeadlineArray

__all__ = ["probe_zarr", "open_zarr", "ZARR_FILE_TYPES"]

#: ``zarr`` for plain arrays, ``omezarr`` for multiscale images.
ZARR_FILE_TYPES = ("zarr", "omezarr")

# How deep to look for arrays in a group that names none.
_SEARCH_DEPTH = 3


@dataclass(frozen=True, slots=True)
class _Located:
    info: VolumeInfo
    layouts: tuple[StackLayout, ...]  #: one per level, level 0 first
    levels: tuple[PyramidLevel, ...]


def _zarr():
    import zarr  # imported on first use: the catalog probes TIFFs without paying for it

    return zarr


def _open_node(path: Path, key: str | None):
    zarr = _zarr()
    if not is_zarr_folder(path):
        raise VolumeError("not a Zarr store: no zarr.json, .zarray or .zgroup", source=path)
    with volume_errors(path, "opening the Zarr store"):
        store = zarr.storage.LocalStore(str(path), read_only=True)
        root = zarr.open(store=store, mode="r")
    if key is None:
        return root
    with volume_errors(path, "opening the Zarr store", where=f"key {key}"):
        try:
            return root[key] if isinstance(root, zarr.Group) else _missing(path, key)
        except KeyError:
            return _missing(path, key)


def _missing(path: Path, key: str):
    raise VolumeError(f"no array or group {key!r} in the Zarr store", source=path, where="key")


def _is_group(node) -> bool:
    return isinstance(node, _zarr().Group)


def _array_paths(group, prefix: str = "", depth: int = 0) -> list[str]:
    """Paths of arrays in ``group`` that could be a volume, a few levels deep."""
    found = []
    for name, member in group.members():
        path = f"{prefix}{name}"
        if _is_group(member):
            if depth + 1 < _SEARCH_DEPTH:
                found.extend(_array_paths(member, f"{path}/", depth + 1))
        elif member.ndim >= 2:
            found.append(path)
    return sorted(found)


def _chunks(array) -> tuple[int, ...]:
    shards = getattr(array, "shards", None)
    return tuple(shards or array.chunks)


def _layout(array, path: Path, where: str) -> StackLayout:
    return stack_layout(DeadlineArray(array, path), array.shape, _chunks(array), path, where=where)


def _attribute_voxel_size(attributes: Mapping) -> tuple[float, float, float] | None:
    """A ``resolution`` (funlib/daisy) or ``voxel_size`` attribute in nm, z y x."""
    for name in ("resolution", "voxel_size"):
        value = attributes.get(name)
        if (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in value)
        ):
            return tuple(float(v) for v in value)  # type: ignore[return-value]
    return None


def _check_axes(multiscale: Multiscale, ndim: int, path: Path) -> None:
    if len(multiscale.axes) != ndim:
        raise VolumeError(
            f"the metadata lists {len(multiscale.axes)} axes but level 0 has {ndim}",
            source=path,
            where="multiscales[0].axes",
        )
    names = tuple(multiscale.axes[i].name.lower() for i in multiscale.space_axes)
    if names not in (("z", "y", "x"), ("y", "x")) or multiscale.space_axes != tuple(
        range(ndim - len(names), ndim)
    ):
        order = ", ".join(a.name for a in multiscale.axes)
        raise VolumeError(
            f"axes ({order}) are not supported: the spatial axes must come last, "
            "as z, y, x (or y, x)",
            source=path,
            where="multiscales[0].axes",
        )


def _multiscale(group, multiscale: Multiscale, path: Path, key: str | None) -> _Located:
    arrays = []
    for index, level in enumerate(multiscale.levels):
        where = f"multiscales[0].datasets[{index}]"
        try:
            arrays.append(group[level.path])
        except KeyError:
            raise VolumeError(
                f"level array {level.path!r} is missing", source=path, where=where
            ) from None
    layouts = tuple(
        _layout(a, path, f"level {level.path}") for a, level in zip(arrays, multiscale.levels)
    )
    _check_axes(multiscale, arrays[0].ndim, path)
    dtype = checked_dtype(arrays[0].dtype, path, where=f"level {multiscale.levels[0].path}")
    voxel_size = multiscale.voxel_size_nm(0)
    if voxel_size is not None and len(voxel_size) != 3:
        voxel_size = None  # a 2-D image has no slice spacing
    levels = []
    for index, layout in enumerate(layouts):
        factors = multiscale.factors(index)
        if len(factors) == 2:
            factors = (1.0, *factors)
        levels.append(PyramidLevel(index, layout.shape, factors, layout.chunks))
    info = VolumeInfo(
        path=path,
        file_type="omezarr",
        shape=layouts[0].shape,
        dtype=dtype.name,
        voxel_size=voxel_size,
        files=(path,),
        key=key,
    )
    return _Located(info, layouts, tuple(levels))


def _single_array(array, path: Path, key: str | None) -> _Located:
    layout = _layout(array, path, f"key {key}" if key else None)
    dtype = checked_dtype(array.dtype, path, where=f"key {key}" if key else None)
    info = VolumeInfo(
        path=path,
        file_type="zarr",
        shape=layout.shape,
        dtype=dtype.name,
        voxel_size=_attribute_voxel_size(array.attrs),
        files=(path,),
        key=key,
    )
    return _Located(
        info, (layout,), (PyramidLevel(0, layout.shape, (1.0, 1.0, 1.0), layout.chunks),)
    )


def _locate(path: Path, key: str | None) -> _Located:
    path = Path(path)
    key = normalise_key(key)
    node = _open_node(path, key)
    if not _is_group(node):
        return _single_array(node, path, key)
    with volume_errors(path, "reading the Zarr metadata"):
        attributes = dict(node.attrs)
        if is_bioformats2raw(attributes) and "0" in node:
            node = node["0"]
            key = f"{key}/0" if key else "0"
            attributes = dict(node.attrs)
    multiscale = read_multiscale(attributes, source=path)
    if multiscale is not None:
        return _multiscale(node, multiscale, path, key)
    with volume_errors(path, "listing the Zarr group"):
        candidates = _array_paths(node)
    chosen = choose_key(candidates, path)
    full_key = f"{key}/{chosen}" if key else chosen
    return _single_array(node[chosen], path, full_key)


def probe_zarr(path: Path, key: str | None = None) -> VolumeInfo:
    """Header facts of a Zarr array or OME-Zarr image; reads metadata only."""
    return _locate(Path(path), key).info


def open_zarr(path: Path, key: str | None = None) -> ArrayVolumeReader:
    """Open a Zarr array or OME-Zarr image (with its pyramid) for lazy reading."""
    located = _locate(Path(path), key)
    pyramid = None
    if len(located.layouts) > 1:
        pyramid = [
            LevelSource(layout.array, level)
            for layout, level in zip(located.layouts, located.levels)
        ]
    base = located.layouts[0]
    return ArrayVolumeReader(
        located.info, base.array, lead=base.lead, chunks=base.chunks, pyramid=pyramid
    )
