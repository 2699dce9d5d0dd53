"""Read N5 datasets (``n5``) lazily, block by block, with their multiscale pyramid if any.

The location is an N5 container folder (``volume.n5``) or a dataset inside one; ``key`` names
the dataset within the container. A group whose children are ``s0``, ``s1``, ... (the
BigDataViewer and Paintera convention) is a pyramid: ``s0`` is read as the volume and every
level is exposed through ``levels``/``level(i)``, with factors from ``downsamplingFactors`` or
the group's ``scales``. N5 lists axes x, y, z; the reader turns them into z, y, x. Voxel sizes
come from ``pixelResolution`` (with its unit) or ``resolution`` (nm).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.volumes.array_reader import ArrayVolumeReader, LevelSource, stack_layout
from biosegment.volumes.base import PyramidLevel, VolumeInfo
from biosegment.volumes.containers import choose_key, normalise_key
from biosegment.volumes.failures import checked_dtype
from biosegment.volumes.n5_format import N5Dataset, read_attributes
from biosegment.volumes.voxel_size import nm_per_unit

__all__ = ["probe_n5", "open_n5"]

_SEARCH_DEPTH = 3


def _is_dataset(folder: Path) -> bool:
    return "dimensions" in read_attributes(folder)


def _dataset_paths(group: Path, prefix: str = "", depth: int = 0) -> list[str]:
    found = []
    try:
        names = sorted(e.name for e in os.scandir(group) if e.is_dir())
    except OSError:
        return found
    for name in names:
        child = group / name
        if not (child / "attributes.json").is_file():
            continue
        if _is_dataset(child):
            found.append(f"{prefix}{name}")
        elif depth + 1 < _SEARCH_DEPTH:
            found.extend(_dataset_paths(child, f"{prefix}{name}/", depth + 1))
    return found


def _pyramid_paths(group: Path) -> list[str]:
    """``s0``, ``s1``, ... while they exist as datasets (empty when ``s0`` is missing)."""
    paths = []
    while _is_dataset(group / f"s{len(paths)}"):
        paths.append(f"s{len(paths)}")
    return paths


def _voxel_size(*attribute_sets: dict) -> tuple[float, float, float] | None:
    for attributes in attribute_sets:
        pixel = attributes.get("pixelResolution")
        if isinstance(pixel, dict):
            size = _positive_triple(pixel.get("dimensions"))
            factor = nm_per_unit(pixel.get("unit"))
            if size is not None and factor is not None:
                return tuple(v * factor for v in reversed(size))  # type: ignore[return-value]
        size = _positive_triple(attributes.get("resolution"))
        if size is not None:
            return tuple(reversed(size))  # type: ignore[return-value]
    return None


def _positive_triple(value) -> tuple[float, float, float] | None:
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in value)
    ):
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    return None


def _factors(
    group_attributes: dict, dataset: N5Dataset, index: int, base_shape: tuple[int, ...]
) -> tuple[float, float, float]:
    own = _positive_triple(dataset.attributes.get("downsamplingFactors"))
    if own is not None:
        return tuple(reversed(own))  # type: ignore[return-value]
    scales = group_attributes.get("scales")
    if isinstance(scales, list) and index < len(scales):
        listed = _positive_triple(scales[index])
        if listed is not None:
            return tuple(reversed(listed))  # type: ignore[return-value]
    shape = dataset.shape[-3:]
    return tuple(
        float(round(b / s)) if s else 1.0  # type: ignore[return-value]
        for b, s in zip(base_shape[-3:], shape)
    )


def _locate(path: Path, key: str | None):
    path = Path(path)
    key = normalise_key(key)
    node = path / key if key else path
    if not node.is_dir():
        raise VolumeError(
            f"no N5 dataset or group {key!r}" if key else "not an N5 folder",
            source=path,
            where="key" if key else None,
        )
    if _is_dataset(node):
        return key, [N5Dataset(node)], read_attributes(node), None
    group_attributes = read_attributes(node)
    levels = _pyramid_paths(node)
    if levels:
        datasets = [N5Dataset(node / name) for name in levels]
        return key, datasets, group_attributes, levels
    chosen = choose_key(_dataset_paths(node), path, what="N5 datasets")
    full_key = f"{key}/{chosen}" if key else chosen
    dataset = N5Dataset(node / chosen)
    return full_key, [dataset], dataset.attributes, None


def _build(path: Path, key: str | None):
    key, datasets, group_attributes, level_names = _locate(path, key)
    base = datasets[0]
    where = f"key {key}" if key else None
    layouts = [stack_layout(d, d.shape, d.chunks, path, where=where) for d in datasets]
    dtype = checked_dtype(base.dtype, path, where=where)
    voxel_size = _voxel_size(base.attributes, group_attributes)
    levels = tuple(
        PyramidLevel(
            i,
            layout.shape,
            (1.0, 1.0, 1.0) if i == 0 else _factors(group_attributes, d, i, base.shape),
            layout.chunks,
        )
        for i, (d, layout) in enumerate(zip(datasets, layouts))
    )
    info = VolumeInfo(
        path=Path(path),
        file_type="n5",
        shape=layouts[0].shape,
        dtype=dtype.name,
        voxel_size=voxel_size,
        files=(Path(path),),
        key=key,
    )
    return info, layouts, levels, level_names


def probe_n5(path: Path, key: str | None = None) -> VolumeInfo:
    """Header facts of an N5 dataset (or pyramid); reads attributes only."""
    return _build(Path(path), key)[0]


def open_n5(path: Path, key: str | None = None) -> ArrayVolumeReader:
    """Open an N5 dataset (or the ``s0`` of a pyramid) for lazy block-wise reading."""
    info, layouts, levels, _ = _build(Path(path), key)
    pyramid = None
    if len(layouts) > 1:
        pyramid = [LevelSource(layout.array, level) for layout, level in zip(layouts, levels)]
    return ArrayVolumeReader(
        info, layouts[0].array, lead=layouts[0].lead, chunks=layouts[0].chunks, pyramid=pyramid
    )
