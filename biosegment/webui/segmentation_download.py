"""A segmentation's label volume as a file a person takes away: a TIFF, or an OME-Zarr store.

What is stored in the asked-for format is sent as it is (``labels.tif``; ``labels.ome.zarr``
zipped while it is sent). Otherwise the volume is converted first, a slice at a time, with
BioSegment's own writers (ImageJ-calibrated TIFF; OME-Zarr label image with the project's
classes and the voxel size) into a scratch folder, then sent and removed. A conversion holds a
few slices in memory, about :data:`CONVERSION_SLICES` of them at most (a chunk of eight slices
being written to every pyramid level, and the chunks read for one slice); before anything is
read that estimate is checked against ``[limits] download_mb`` (413 naming both sizes), and
the converted file's size against the scratch disk's free space (507). Values are the stored
ones, unchanged.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from biosegment.config import Config
from biosegment.folder_names import SEGMENTATION_LABELS, SEGMENTATION_LABELS_ZARR
from biosegment.paths import ensure_inside
from biosegment.volumes import open_volume
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter
from biosegment.volumes.writer import LabelVolumeWriter
from biosegment.webui.errors import ApiError

__all__ = [
    "DOWNLOAD_FORMATS",
    "CONVERSION_SLICES",
    "Prepared",
    "conversion_memory",
    "prepare_download",
]

#: What a segmentation can be downloaded as: the URL's format, and the file name's ending.
DOWNLOAD_FORMATS = {"tiff": ".tif", "ome-zarr": ".ome.zarr"}
#: Slices a conversion may hold at once (see the module's docstring); a generous bound.
CONVERSION_SLICES = 24
_MIB = 2**20


@dataclass(frozen=True)
class Prepared:
    """What to send: a file, or a store folder (``is_folder``); ``scratch`` to remove after."""

    path: Path
    is_folder: bool
    scratch: Path | None


def _is_zarr(path: Path) -> bool:
    return path.is_dir() and path.name.lower().endswith(".zarr")


def _is_tiff(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".tif", ".tiff")


def conversion_memory(shape: tuple[int, int, int], itemsize: int) -> int:
    """Bytes a conversion of a ``shape`` volume holds at most (an estimate, on the high side)."""
    return CONVERSION_SLICES * int(shape[1]) * int(shape[2]) * int(itemsize)


def _check_fits(config: Config, shape, itemsize: int, scratch_parent: Path, what: str) -> None:
    needed = conversion_memory(shape, itemsize)
    limit = config.limits.download_mb * _MIB
    if needed > limit:
        fits = int(math.sqrt(limit / (CONVERSION_SLICES * itemsize)))
        raise ApiError(
            413,
            f"converting this segmentation ({' x '.join(map(str, shape))} voxels) to {what} "
            f"would hold about {needed / _MIB:,.0f} MiB in memory, more than the "
            f"{config.limits.download_mb} MiB [limits] download_mb allows; slices up to about "
            f"{fits} x {fits} pixels fit. Download the format it is stored in, or raise the limit",
            field="format",
        )
    size = math.prod(int(n) for n in shape) * itemsize
    free = shutil.disk_usage(scratch_parent).free
    if size > free:
        raise ApiError(
            507,
            f"converting this segmentation to {what} needs up to {size / _MIB:,.0f} MiB in "
            f"{scratch_parent}, which has {free / _MIB:,.0f} MiB free",
            field="format",
        )


def _stored(volume: Path, wanted: str) -> Path | None:
    """The stored file or store in the wanted format, if the segmentation has one."""
    candidates = [volume]
    if volume.is_dir() and not _is_zarr(volume):
        candidates = [volume / SEGMENTATION_LABELS, volume / SEGMENTATION_LABELS_ZARR]
    for candidate in candidates:
        if wanted == "tiff" and _is_tiff(candidate):
            return candidate
        if wanted == "ome-zarr" and _is_zarr(candidate):
            return candidate
    return None


def _check_inside(root: Path, path: Path) -> None:
    """A store's files may be links; none may lead outside the data folder."""
    ensure_inside(root, path)
    if path.is_dir():
        for directory, _folders, names in os.walk(path):
            for name in names:
                ensure_inside(root, Path(directory) / name)


def prepare_download(
    config: Config,
    volume: Path,
    wanted: str,
    *,
    classes: list[dict],
    make_scratch,
) -> Prepared:
    """The file or store to send for the label volume at ``volume`` in format ``wanted``.

    :param volume: the segmentation's label volume (file, store or slice folder).
    :param wanted: a key of :data:`DOWNLOAD_FORMATS`.
    :param classes: the classes an OME-Zarr label image names.
    :param make_scratch: returns a new scratch folder (called only when converting).
    :raises ApiError: 413 or 507 when a conversion would not fit (nothing read yet).
    """
    root = config.data_dir
    stored = _stored(volume, wanted)
    if stored is not None:
        _check_inside(root, stored)
        return Prepared(stored, stored.is_dir(), None)
    with open_volume(volume) as reader:
        for file in reader.info.files:
            ensure_inside(root, file)
        what = "OME-Zarr" if wanted == "ome-zarr" else "TIFF"
        _check_fits(config, reader.shape, reader.dtype.itemsize, config.state_dir, what)
        scratch = make_scratch()
        try:
            target = scratch / f"labels{DOWNLOAD_FORMATS[wanted]}"
            _convert(reader, target, wanted, classes)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return Prepared(target, wanted == "ome-zarr", scratch)


def _convert(reader, target: Path, wanted: str, classes: list[dict]) -> None:
    options = {"dtype": reader.dtype.name, "voxel_size": reader.voxel_size}
    writer: OmeZarrWriter | LabelVolumeWriter
    if wanted == "ome-zarr":
        writer = OmeZarrWriter(target, reader.shape, classes=classes, **options)
    else:
        writer = LabelVolumeWriter(target, reader.shape, **options)
    with writer:
        for z in range(reader.shape[0]):
            writer.write_slice(z, reader.read_slice(z))
