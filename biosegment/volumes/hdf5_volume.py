"""Read a dataset of an HDF5 file (``hdf5``) lazily, chunk by chunk.

The volume is the dataset at ``key`` (``setup.json``'s ``key``, or a location that continues
past the file name: ``EM/sample.h5/volumes/raw``). Without a key the file's only image-like
dataset is taken, or a conventionally named one (``raw``, ``volumes/raw``, ``data``,
``exported_data``, ...). h5py reads only the chunks a block covers. The voxel size comes from
an ``element_size_um`` attribute (the ImageJ HDF5 plugin and ilastik, z y x in µm) or a
``resolution`` attribute (CREMI, z y x in nm). Files are opened read-only without HDF5's file
locking, so a volume another program holds open can still be viewed.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py

from biosegment.errors import VolumeError
from biosegment.volumes.array_reader import ArrayVolumeReader, stack_layout
from biosegment.volumes.base import VolumeInfo
from biosegment.volumes.containers import choose_key, normalise_key
from biosegment.volumes.failures import checked_dtype, checked_file_size, volume_errors

__all__ = ["probe_hdf5", "open_hdf5"]


def _open_file(path: Path):
    checked_file_size(path)
    with volume_errors(path, "opening the HDF5 file"):
        return h5py.File(path, "r", locking=False)


def _candidates(handle) -> list[str]:
    found: list[str] = []

    def visit(name: str, node) -> None:
        if isinstance(node, h5py.Dataset) and node.ndim >= 2 and node.dtype.kind in "uif":
            found.append(name)

    handle.visititems(visit)
    return sorted(found)


def _voxel_size(attributes) -> tuple[float, float, float] | None:
    for name, nm_per in (("element_size_um", 1000.0), ("resolution", 1.0)):
        value = attributes.get(name)
        try:
            values = [float(v) for v in value] if value is not None else []
        except (TypeError, ValueError):
            continue
        if len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values):
            return tuple(v * nm_per for v in values)  # type: ignore[return-value]
    return None


def _locate(handle, path: Path, key: str | None):
    key = normalise_key(key)
    if key is None:
        with volume_errors(path, "listing the HDF5 datasets"):
            candidates = _candidates(handle)
        key = choose_key(candidates, path, what="datasets")
    with volume_errors(path, "opening the HDF5 dataset", where=f"key {key}"):
        node = handle.get(key)
    if node is None:
        raise VolumeError(f"no dataset {key!r} in the file", source=path, where="key")
    if not isinstance(node, h5py.Dataset):
        raise VolumeError(f"{key!r} is a group, not a dataset", source=path, where="key")
    where = f"key {key}"
    dtype = checked_dtype(node.dtype, path, where=where)
    layout = stack_layout(node, node.shape, node.chunks, path, where=where)
    info = VolumeInfo(
        path=path,
        file_type="hdf5",
        shape=layout.shape,
        dtype=dtype.name,
        voxel_size=_voxel_size(node.attrs),
        files=(path,),
        key=key,
    )
    return info, layout


def probe_hdf5(path: Path, key: str | None = None) -> VolumeInfo:
    """Header facts of an HDF5 dataset; reads metadata only."""
    path = Path(path)
    handle = _open_file(path)
    try:
        return _locate(handle, path, key)[0]
    finally:
        handle.close()


def open_hdf5(path: Path, key: str | None = None) -> ArrayVolumeReader:
    """Open an HDF5 dataset for lazy reading; closing the reader closes the file."""
    path = Path(path)
    handle = _open_file(path)
    try:
        info, layout = _locate(handle, path, key)
    except BaseException:
        handle.close()
        raise
    return ArrayVolumeReader(
        info, layout.array, lead=layout.lead, chunks=layout.chunks, on_close=handle.close
    )
