"""Find out which kind of volume a path holds, and open or probe it with the right reader.

A dataset is a multi-page TIFF (``tif3d``), a single-page TIFF (``tif2d``), a folder of TIFF
slices (``tifseq``) or a folder of PNG slices (``pngseq``). A folder holding exactly one TIFF
file (the usual ``EM/<dataset>/raw/`` layout) is that file. A dispatch table maps each type to
its probe and open functions, so adding a format means adding one row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.volumes.base import VolumeInfo, VolumeReader
from biosegment.volumes.naming import (IMAGE_SUFFIXES, PNG_SUFFIXES, TIFF_SUFFIXES,
                                       list_image_files)
from biosegment.volumes.slice_folder import open_slice_folder, probe_slice_folder
from biosegment.volumes.tiff_stack import open_tiff_stack, probe_tiff_stack

__all__ = ["FILE_TYPES", "detect_file_type", "open_volume", "probe_volume"]

#: Every volume type BioSegment reads, as written in ``setup.json``'s ``file_type``.
FILE_TYPES: tuple[str, ...] = ("tif2d", "tif3d", "tifseq", "pngseq")


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
        raise VolumeError(f"file type {file_type} needs one TIFF file, but this folder does "
                          "not hold exactly one", source=path)
    return single


def _slice_folder(path: Path, file_type: str) -> Path:
    if _stat_kind(path) != "folder":
        raise VolumeError(f"file type {file_type} needs a folder of slices, not a file",
                          source=path)
    return path


def detect_file_type(path: Path) -> str:
    """Return ``tif3d``, ``tif2d``, ``tifseq`` or ``pngseq`` for ``path``, reading headers only."""
    path = Path(path)
    if _stat_kind(path) == "file":
        suffix = path.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            return probe_tiff_stack(path).file_type
        if suffix in PNG_SUFFIXES:
            raise VolumeError("a single PNG is not a volume; put PNG slices in a folder",
                              source=path)
        raise VolumeError("not an image file: expected "
                          + ", ".join(sorted(IMAGE_SUFFIXES)), source=path)
    files = list_image_files(path)
    if not files:
        raise VolumeError("folder holds no image files (" + ", ".join(sorted(IMAGE_SUFFIXES))
                          + ")", source=path)
    suffixes = {f.suffix.lower() for f in files}
    if suffixes & TIFF_SUFFIXES and suffixes & PNG_SUFFIXES:
        raise VolumeError("folder mixes TIFF and PNG slices; keep one format per volume",
                          source=path)
    if suffixes & PNG_SUFFIXES:
        return "pngseq"
    if len(files) == 1:
        return probe_tiff_stack(files[0]).file_type
    return "tifseq"


_PROBES: dict[str, Callable[[Path], VolumeInfo]] = {
    "tif2d": lambda p: probe_tiff_stack(_tiff_file(p, "tif2d")),
    "tif3d": lambda p: probe_tiff_stack(_tiff_file(p, "tif3d")),
    "tifseq": lambda p: probe_slice_folder(_slice_folder(p, "tifseq"), "tifseq"),
    "pngseq": lambda p: probe_slice_folder(_slice_folder(p, "pngseq"), "pngseq"),
}

_OPENERS: dict[str, Callable[[Path], VolumeReader]] = {
    "tif2d": lambda p: open_tiff_stack(_tiff_file(p, "tif2d")),
    "tif3d": lambda p: open_tiff_stack(_tiff_file(p, "tif3d")),
    "tifseq": lambda p: open_slice_folder(_slice_folder(p, "tifseq"), "tifseq"),
    "pngseq": lambda p: open_slice_folder(_slice_folder(p, "pngseq"), "pngseq"),
}


def _checked_type(path: Path, file_type: str | None) -> str:
    if file_type is None:
        return detect_file_type(path)
    if file_type not in FILE_TYPES:
        raise VolumeError(f"unknown file type {file_type!r}; expected one of "
                          + ", ".join(FILE_TYPES), source=path)
    return file_type


def probe_volume(path: Path, file_type: str | None = None) -> VolumeInfo:
    """Shape, dtype, voxel size and files of the volume at ``path``; never reads pixels.

    ``file_type`` as in ``setup.json``; None detects it. A ``tif2d``/``tif3d`` declaration is
    a hint: the reported ``file_type`` is what the TIFF actually holds (one page or several).
    """
    path = Path(path)
    return _PROBES[_checked_type(path, file_type)](path)


def open_volume(path: Path, file_type: str | None = None) -> VolumeReader:
    """Open the volume at ``path`` for lazy reading (see :func:`probe_volume` for ``file_type``)."""
    path = Path(path)
    return _OPENERS[_checked_type(path, file_type)](path)
