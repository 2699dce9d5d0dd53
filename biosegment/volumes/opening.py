"""Find out which kind of volume a path holds, and open or probe it with the right reader.

A dataset is a multi-page TIFF (``tif3d``), a single-page TIFF (``tif2d``), a folder of TIFF
slices (``tifseq``) or of PNG slices (``pngseq``), an OME-Zarr image (``omezarr``), a plain
Zarr array (``zarr``), an N5 dataset (``n5``), a dataset in an HDF5 file (``hdf5``) or an MRC
file (``mrc``). A folder holding exactly one TIFF file, or nothing but one container (the usual
``EM/<dataset>/raw/`` layout), is that file. Containers take a ``key`` naming the array
inside; a path that continues past an HDF5 file's name (``sample.h5/volumes/raw``) carries its
key with it. A dispatch table maps each type to its probe and open functions, so adding a
format means adding one row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.paths import is_temporary_name
from biosegment.volumes.base import VolumeInfo, VolumeReader
from biosegment.volumes.containers import (
    HDF5_SUFFIXES,
    MRC_SUFFIXES,
    container_type_of_file,
    is_n5_folder,
    is_zarr_folder,
    normalise_key,
    split_container_path,
)
from biosegment.volumes.hdf5_volume import open_hdf5, probe_hdf5
from biosegment.volumes.limits import check_volume_claims
from biosegment.volumes.mrc_volume import open_mrc, probe_mrc
from biosegment.volumes.n5_volume import open_n5, probe_n5
from biosegment.volumes.naming import IMAGE_SUFFIXES, PNG_SUFFIXES, TIFF_SUFFIXES, list_image_files
from biosegment.volumes.slice_folder import open_slice_folder, probe_slice_folder
from biosegment.volumes.tiff_stack import open_tiff_stack, probe_tiff_stack
from biosegment.volumes.zarr_volume import open_zarr, probe_zarr

__all__ = [
    "FILE_TYPES",
    "CONTAINER_TYPES",
    "detect_file_type",
    "open_volume",
    "probe_volume",
    "find_volume_in_folder",
    "is_volume_container",
]

#: Every volume type BioSegment reads, as written in ``setup.json``'s ``file_type``.
FILE_TYPES: tuple[str, ...] = (
    "tif2d",
    "tif3d",
    "tifseq",
    "pngseq",
    "omezarr",
    "zarr",
    "n5",
    "hdf5",
    "mrc",
)
#: The types whose files hold arrays addressed by a ``key``.
CONTAINER_TYPES: tuple[str, ...] = ("omezarr", "zarr", "n5", "hdf5")

_EVERY_SUFFIX = ", ".join(
    sorted(IMAGE_SUFFIXES | HDF5_SUFFIXES | MRC_SUFFIXES) + [".zarr/", ".n5/"]
)


def _stat_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    if path.exists():
        raise VolumeError("neither a file nor a folder", source=path)
    raise VolumeError("file or folder not found", source=path)


def _single_tiff_in(folder: Path) -> Path | None:
    """The only TIFF file in ``folder`` when it holds exactly one image file, else None."""
    files = list_image_files(folder)
    if len(files) == 1 and files[0].suffix.lower() in TIFF_SUFFIXES:
        return files[0]
    return None


def _tiff_file(path: Path, file_type: str) -> Path:
    if _stat_kind(path) == "file":
        return path
    single = _single_tiff_in(path)
    if single is None:
        raise VolumeError(
            f"file type {file_type} needs one TIFF file, but this folder does not hold exactly one",
            source=path,
        )
    return single


def _slice_folder(path: Path, file_type: str) -> Path:
    if _stat_kind(path) != "folder":
        raise VolumeError(
            f"file type {file_type} needs a folder of slices, not a file", source=path
        )
    return path


def is_volume_container(path: Path) -> bool:
    """True for a Zarr or N5 folder, or an HDF5 or MRC file: one volume store, not slices."""
    path = Path(path)
    if path.is_dir():
        return is_zarr_folder(path) or is_n5_folder(path)
    return path.is_file() and container_type_of_file(path) is not None


def find_volume_in_folder(folder: Path) -> Path | None:
    """The volume a dataset folder holds: the folder itself when it is a container or holds
    slices, its single TIFF file, or the single container inside it; None when it holds none.

    Reads the listing only (and marker files of sub-folders), never pixels.
    """
    folder = Path(folder)
    if is_volume_container(folder):
        return folder
    try:
        files = list_image_files(folder)
    except VolumeError:
        return None
    if len(files) == 1 and files[0].suffix.lower() in TIFF_SUFFIXES:
        return files[0]
    if files:
        return folder
    inside = _single_container_in(folder)
    return inside


def _single_container_in(folder: Path) -> Path | None:
    try:
        entries = [folder / name for name in os.listdir(folder) if not is_temporary_name(name)]
    except OSError:
        return None
    containers = [entry for entry in entries if is_volume_container(entry)]
    return containers[0] if len(containers) == 1 else None


def _container_type(path: Path) -> str | None:
    """The type of a container at ``path`` (a Zarr store is probed for OME metadata)."""
    if path.is_dir():
        if is_zarr_folder(path):
            return probe_zarr(path).file_type
        if is_n5_folder(path):
            return "n5"
        return None
    return container_type_of_file(path)


def detect_file_type(path: Path) -> str:
    """Tell which kind of volume a path holds, reading listings and headers only.

    :param path: a file, a folder, or a path into an HDF5 file (``sample.h5/volumes/raw``).
    :returns: one of :data:`FILE_TYPES`.
    :raises VolumeError: when the path holds no volume BioSegment reads (naming the path).
    """
    path, key = split_container_path(Path(path))
    if key is not None:
        kind = container_type_of_file(path)
        if kind not in CONTAINER_TYPES:
            raise VolumeError(f"is a file, so {key!r} cannot be a path inside it", source=path)
        return kind
    if _stat_kind(path) == "file":
        suffix = path.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            return probe_tiff_stack(path).file_type
        if suffix in PNG_SUFFIXES:
            raise VolumeError(
                "a single PNG is not a volume; put PNG slices in a folder", source=path
            )
        kind = container_type_of_file(path)
        if kind is not None:
            return kind
        raise VolumeError("not an image file: expected " + _EVERY_SUFFIX, source=path)
    kind = _container_type(path)
    if kind is not None:
        return kind
    files = list_image_files(path)
    if not files:
        inside = _single_container_in(path)
        if inside is not None:
            return detect_file_type(inside)
        raise VolumeError("folder holds no image files (" + _EVERY_SUFFIX + ")", source=path)
    suffixes = {f.suffix.lower() for f in files}
    if suffixes & TIFF_SUFFIXES and suffixes & PNG_SUFFIXES:
        raise VolumeError(
            "folder mixes TIFF and PNG slices; keep one format per volume", source=path
        )
    if suffixes & PNG_SUFFIXES:
        return "pngseq"
    if len(files) == 1:
        return probe_tiff_stack(files[0]).file_type
    return "tifseq"


def _container(path: Path, file_type: str) -> Path:
    """The container a ``file_type`` declaration points at (a dataset folder may hold it)."""
    kind = _stat_kind(path)
    wants_folder = file_type in ("omezarr", "zarr", "n5")
    if kind == ("folder" if wants_folder else "file"):
        if not wants_folder or is_zarr_folder(path) or is_n5_folder(path):
            return path
    if kind == "folder":
        inside = _single_container_in(path)
        if inside is not None:
            return inside
    needed = "a Zarr or N5 folder" if wants_folder else f"an {file_type.upper()} file"
    raise VolumeError(f"file type {file_type} needs {needed}", source=path)


def _zarr_reader(path: Path, key: str | None, *, probe: bool):
    return (probe_zarr if probe else open_zarr)(_container(path, "zarr"), key)


_PROBES: dict[str, Callable[[Path, str | None], VolumeInfo]] = {
    "tif2d": lambda p, k: probe_tiff_stack(_tiff_file(p, "tif2d")),
    "tif3d": lambda p, k: probe_tiff_stack(_tiff_file(p, "tif3d")),
    "tifseq": lambda p, k: probe_slice_folder(_slice_folder(p, "tifseq"), "tifseq"),
    "pngseq": lambda p, k: probe_slice_folder(_slice_folder(p, "pngseq"), "pngseq"),
    "omezarr": lambda p, k: _zarr_reader(p, k, probe=True),
    "zarr": lambda p, k: _zarr_reader(p, k, probe=True),
    "n5": lambda p, k: probe_n5(_container(p, "n5"), k),
    "hdf5": lambda p, k: probe_hdf5(_container(p, "hdf5"), k),
    "mrc": lambda p, k: probe_mrc(_container(p, "mrc")),
}

_OPENERS: dict[str, Callable[[Path, str | None], VolumeReader]] = {
    "tif2d": lambda p, k: open_tiff_stack(_tiff_file(p, "tif2d")),
    "tif3d": lambda p, k: open_tiff_stack(_tiff_file(p, "tif3d")),
    "tifseq": lambda p, k: open_slice_folder(_slice_folder(p, "tifseq"), "tifseq"),
    "pngseq": lambda p, k: open_slice_folder(_slice_folder(p, "pngseq"), "pngseq"),
    "omezarr": lambda p, k: _zarr_reader(p, k, probe=False),
    "zarr": lambda p, k: _zarr_reader(p, k, probe=False),
    "n5": lambda p, k: open_n5(_container(p, "n5"), k),
    "hdf5": lambda p, k: open_hdf5(_container(p, "hdf5"), k),
    "mrc": lambda p, k: open_mrc(_container(p, "mrc")),
}


def _resolve(path: Path, file_type: str | None, key: str | None) -> tuple[Path, str, str | None]:
    """The container (or file/folder), the type and the key to read the volume with."""
    path, inner = split_container_path(Path(path))
    key = normalise_key(key)
    if inner is not None:
        key = f"{inner}/{key}" if key else inner
    if file_type is None:
        file_type = detect_file_type(path)
    elif file_type not in FILE_TYPES:
        raise VolumeError(
            f"unknown file type {file_type!r}; expected one of " + ", ".join(FILE_TYPES),
            source=path,
        )
    if key is not None and file_type not in CONTAINER_TYPES:
        raise VolumeError(
            f"a {file_type} volume holds one image; 'key' ({key!r}) is only for "
            + ", ".join(CONTAINER_TYPES),
            source=path,
            where="key",
        )
    return path, file_type, key


def probe_volume(path: Path, file_type: str | None = None, *, key: str | None = None) -> VolumeInfo:
    """Shape, dtype, voxel size and files of the volume at ``path``; never reads pixels.

    :param path: the file or folder holding the volume (or a path into an HDF5 file).
    :param file_type: as in ``setup.json``; None detects it. A ``tif2d``/``tif3d`` declaration
        is a hint: the reported ``file_type`` is what the TIFF actually holds (one page or
        several); likewise ``zarr`` and ``omezarr`` report what the store holds.
    :param key: the array inside a container (HDF5, Zarr, N5).
    :returns: the volume's :class:`VolumeInfo`; its ``key`` is the one read.
    :raises VolumeError: for a missing, unreadable or unsupported volume, or one whose headers
        claim more than the configured limits (:mod:`~biosegment.volumes.limits`), naming the
        file.
    """
    path, file_type, key = _resolve(path, file_type, key)
    info = _PROBES[file_type](path, key)
    check_volume_claims(info.shape, None, info.path)
    return info


def open_volume(
    path: Path, file_type: str | None = None, *, key: str | None = None
) -> VolumeReader:
    """Open the volume at ``path`` for lazy reading; opening reads headers only.

    :param path: the file or folder holding the volume (or a path into an HDF5 file).
    :param file_type: as in ``setup.json``; None detects it (see :func:`probe_volume`).
    :param key: the array inside a container (HDF5, Zarr, N5).
    :returns: a :class:`VolumeReader`; close it, or use it as a context manager.
    :raises VolumeError: for a missing, unreadable or unsupported volume, naming the file.
    """
    path, file_type, key = _resolve(path, file_type, key)
    reader = _OPENERS[file_type](path, key)
    try:
        check_volume_claims(reader.shape, reader.chunks, reader.info.path)
    except BaseException:
        reader.close()
        raise
    return reader
