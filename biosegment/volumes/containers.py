"""Recognise container formats (Zarr, N5, HDF5, MRC) and find the array a volume lives in.

Containers hold more than one array: a Zarr or N5 group, an HDF5 file with ``raw`` and
``labels`` datasets. A volume inside one is named by its container plus a ``key`` (the array's
path inside it), given in ``setup.json`` or written straight after the container in a location
(``EM/cremi.h5/volumes/raw``). :func:`split_container_path` separates the two;
:func:`choose_key` picks the array when no key is given: the only candidate, else a
conventional name, else an error listing the choices. Recognition reads marker files and
suffixes only, never pixels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from biosegment.errors import VolumeError

__all__ = [
    "HDF5_SUFFIXES",
    "MRC_SUFFIXES",
    "ZARR_SUFFIX",
    "N5_SUFFIX",
    "PREFERRED_KEYS",
    "is_zarr_folder",
    "is_n5_folder",
    "is_container_file",
    "container_type_of_file",
    "split_container_path",
    "choose_key",
    "normalise_key",
    "storage_path",
    "CONTAINER_FILE_SUFFIXES",
    "volume_stem",
]

HDF5_SUFFIXES = frozenset({".h5", ".hdf5", ".hdf", ".he5"})
#: Suffixes of MRC files: maps, tomograms (``.rec``), tilt series (``.st``, ``.ali``).
MRC_SUFFIXES = frozenset({".mrc", ".map", ".rec", ".st", ".ali", ".mrcs"})
ZARR_SUFFIX = ".zarr"
N5_SUFFIX = ".n5"
#: Suffixes of single files that hold a whole volume (beside TIFF).
CONTAINER_FILE_SUFFIXES = HDF5_SUFFIXES | MRC_SUFFIXES

_ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
_N5_MARKER = "attributes.json"

#: Array names taken as "the image" when a container holds several arrays and no key is given.
PREFERRED_KEYS = ("raw", "volumes/raw", "data", "volume", "image", "exported_data", "s0", "0")


def is_zarr_folder(path: Path) -> bool:
    """True for a folder holding Zarr (v2 or v3) metadata at its top."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in _ZARR_MARKERS)


def is_n5_folder(path: Path) -> bool:
    """True for an N5 container or dataset: ``attributes.json`` with N5 keys, or a ``.n5`` name."""
    marker = os.path.join(path, _N5_MARKER)
    if not os.path.isfile(marker) or is_zarr_folder(path):
        return False
    if str(path).lower().rstrip("/\\").endswith(N5_SUFFIX):
        return True
    try:
        with open(marker, encoding="utf-8") as handle:
            attributes = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(attributes, dict) and ("n5" in attributes or "dimensions" in attributes)


def volume_stem(name: str) -> str:
    """A volume's name without its storage suffix: ``cells.ome.zarr`` -> ``cells``."""
    lowered = name.lower()
    for suffix in (".ome.zarr", ZARR_SUFFIX, N5_SUFFIX):
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def container_type_of_file(path: Path) -> str | None:
    """``hdf5`` or ``mrc`` for a file with one of their suffixes, else None."""
    suffix = Path(path).suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in MRC_SUFFIXES:
        return "mrc"
    return None


def is_container_file(path: Path) -> bool:
    return container_type_of_file(path) is not None and os.path.isfile(path)


def split_container_path(path: Path) -> tuple[Path, str | None]:
    """``EM/a.h5/volumes/raw`` -> (``EM/a.h5``, ``volumes/raw``); an existing path -> (path, None).

    Walks up from ``path`` to the nearest existing ancestor; when that is a file (an HDF5 or
    other container), the rest is the key inside it. A path with no existing ancestor file is
    returned unchanged (the caller reports it as not found).
    """
    path = Path(path)
    if os.path.exists(path):
        return path, None
    for parent in path.parents:
        if os.path.isfile(parent):
            return parent, path.relative_to(parent).as_posix()
        if os.path.exists(parent):
            break
    return path, None


def storage_path(path: Path) -> Path:
    """The file or folder on disk that holds the volume at ``path`` (its container for a key)."""
    return split_container_path(Path(path))[0]


def normalise_key(key: str | None) -> str | None:
    """``/volumes//raw/`` -> ``volumes/raw``; empty means none. Rejects ``..``."""
    if key is None:
        return None
    parts = [p for p in str(key).replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise VolumeError(f"key {key!r} must not contain '..'", where="key")
    return str(PurePosixPath(*parts)) if parts else None


def choose_key(candidates: Sequence[str], source: Path, *, what: str = "arrays") -> str:
    """The array to read from a container when no key was given.

    :param candidates: paths of the arrays that could be a volume.
    :raises VolumeError: when there is none, or several and none has a conventional name.
    """
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise VolumeError(
            f"holds no {what} that could be a volume (2-D or 3-D, one channel)", source=source
        )
    for preferred in PREFERRED_KEYS:
        if preferred in candidates:
            return preferred
    shown = ", ".join(sorted(candidates)[:8]) + (", ..." if len(candidates) > 8 else "")
    raise VolumeError(
        f"holds several {what} ({shown}); name the one to read with 'key' in "
        "setup.json or as a path inside the container",
        source=source,
    )
