"""The N5 storage format: datasets of compressed blocks in a folder tree, read and written.

N5 (from the Saalfeld lab; BigDataViewer, Paintera and the N5 plugins of Fiji use it) stores
each dataset as a folder with an ``attributes.json`` (``dimensions``, ``blockSize``,
``dataType``, ``compression``) and one file per block at ``<x>/<y>/<z>``. Axes are listed
fastest first (x, y, z), the reverse of numpy's order; a block file starts with a big-endian
header (mode, number of axes, the block's own size, which is smaller at the far edges) followed
by its compressed big-endian samples. :class:`N5Dataset` slices like a numpy array and decodes
only the blocks a request covers (missing blocks read as zeros); :func:`write_n5_dataset`
writes one. Codecs: raw, gzip (and zlib), bzip2, xz, blosc and zstd.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import struct
import zlib
from collections.abc import Mapping
from itertools import product
from pathlib import Path

import numcodecs
import numpy as np

from biosegment.errors import VolumeError
from biosegment.volumes.atomic import AtomicFile

__all__ = [
    "N5Dataset",
    "read_attributes",
    "write_attributes",
    "write_n5_dataset",
    "N5_VERSION",
    "N5_DTYPES",
]

N5_VERSION = "4.0.0"
#: N5 ``dataType`` names and the numpy types they hold (stored big-endian).
N5_DTYPES = {
    "uint8": "u1",
    "uint16": "u2",
    "uint32": "u4",
    "uint64": "u8",
    "int8": "i1",
    "int16": "i2",
    "int32": "i4",
    "int64": "i8",
    "float32": "f4",
    "float64": "f8",
}
_ATTRIBUTES = "attributes.json"
_HEADER = struct.Struct(">HH")


def read_attributes(folder: Path) -> dict:
    """The ``attributes.json`` of an N5 group or dataset (empty when there is none)."""
    path = Path(folder) / _ATTRIBUTES
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise VolumeError(f"cannot read: {exc.strerror or exc}", source=path) from None
    try:
        attributes = json.loads(text)
    except ValueError as exc:
        raise VolumeError(f"invalid JSON: {exc}", source=path) from None
    if not isinstance(attributes, dict):
        raise VolumeError("expected a JSON object", source=path)
    return attributes


def write_attributes(folder: Path, attributes: Mapping) -> None:
    """Write (replace) ``attributes.json`` atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with AtomicFile(folder / _ATTRIBUTES) as target:
        target.file.write(json.dumps(dict(attributes), indent=1).encode("utf-8"))


def _codec(compression: Mapping, source: Path):
    """(decode, encode) functions for an N5 ``compression`` description."""
    kind = compression.get("type", "raw")
    if kind == "raw":
        return (lambda data: data), (lambda data: data)
    if kind == "gzip":
        level = int(compression.get("level", -1))
        if compression.get("useZlib"):
            return zlib.decompress, (lambda data: zlib.compress(data, level))
        # Readers are lenient: some writers produce zlib streams under "gzip".
        return (
            _gunzip_or_inflate,
            (lambda data: gzip.compress(data, compresslevel=9 if level < 0 else level)),
        )
    if kind == "bzip2":
        return bz2.decompress, (lambda data: bz2.compress(data))
    if kind == "xz":
        return lzma.decompress, (lambda data: lzma.compress(data))
    if kind in ("blosc", "zstd"):
        if kind == "blosc":
            codec = numcodecs.Blosc(
                cname=compression.get("cname", "lz4"),
                clevel=int(compression.get("clevel", 5)),
                shuffle=int(compression.get("shuffle", 1)),
            )
        else:
            codec = numcodecs.Zstd(level=int(compression.get("level", 3)))
        return (lambda data: bytes(codec.decode(data))), (lambda data: bytes(codec.encode(data)))
    raise VolumeError(
        f"N5 compression {kind!r} is not supported (raw, gzip, bzip2, xz, blosc, zstd)",
        source=source,
        where="compression",
    )


def _gunzip_or_inflate(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return zlib.decompress(data)


class N5Dataset:
    """One N5 dataset, indexed like a numpy array in (z, y, x) order (slowest axis first)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        attributes = read_attributes(self.folder)
        try:
            dimensions = [int(d) for d in attributes["dimensions"]]
            block = [int(b) for b in attributes["blockSize"]]
            data_type = str(attributes["dataType"])
        except (KeyError, TypeError, ValueError):
            raise VolumeError(
                "not an N5 dataset: attributes.json lacks dimensions, blockSize or dataType",
                source=self.folder / _ATTRIBUTES,
            ) from None
        if data_type not in N5_DTYPES:
            raise VolumeError(
                f"N5 data type {data_type!r} is not supported",
                source=self.folder / _ATTRIBUTES,
                where="dataType",
            )
        if len(block) != len(dimensions) or min(block, default=0) < 1:
            raise VolumeError(
                "blockSize must give one positive size per dimension",
                source=self.folder / _ATTRIBUTES,
                where="blockSize",
            )
        compression = attributes.get("compression")
        if compression is None:  # N5 before 1.0 named only the type
            compression = {"type": attributes.get("compressionType", "raw")}
        self.attributes = attributes
        self.shape = tuple(reversed(dimensions))
        self.chunks = tuple(reversed(block))
        self.ndim = len(self.shape)
        self.stored_dtype = np.dtype(">" + N5_DTYPES[data_type])
        self.dtype = self.stored_dtype.newbyteorder("=")
        self._decode, _ = _codec(compression, self.folder / _ATTRIBUTES)

    def __getitem__(self, index) -> np.ndarray:
        boxes, steps, drop = self._normalise(index)
        out = np.zeros(tuple(b - a for a, b in boxes), dtype=self.dtype)
        first = [a // c for (a, _), c in zip(boxes, self.chunks)]
        last = [(b - 1) // c for (_, b), c in zip(boxes, self.chunks)]
        if all(b > a for a, b in boxes):
            for grid in product(*(range(f, e + 1) for f, e in zip(first, last))):
                self._copy_block(grid, boxes, out)
        out = out[tuple(slice(None, None, s) for s in steps)]
        if drop:
            out = out[tuple(0 if d else slice(None) for d in drop)]
        return out

    def _normalise(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) > self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}-D dataset")
        index = index + (slice(None),) * (self.ndim - len(index))
        boxes, steps, drop = [], [], []
        for item, size in zip(index, self.shape):
            if isinstance(item, slice):
                start, stop, step = item.indices(size)
                if step < 1:
                    raise IndexError("negative steps are not supported")
                stop = max(start, stop)
                boxes.append((start, stop))
                steps.append(step)
                drop.append(False)
            else:
                position = int(item)
                if position < 0:
                    position += size
                if not 0 <= position < size:
                    raise IndexError(f"index {item} outside 0:{size}")
                boxes.append((position, position + 1))
                steps.append(1)
                drop.append(True)
        return boxes, steps, drop

    def _copy_block(self, grid: tuple[int, ...], boxes, out: np.ndarray) -> None:
        block = self._read_block(grid)
        if block is None:
            return  # never written: zeros, already in ``out``
        origin = [g * c for g, c in zip(grid, self.chunks)]
        source, target = [], []
        for axis, (a, b) in enumerate(boxes):
            lo = max(a, origin[axis])
            hi = min(b, origin[axis] + block.shape[axis])
            if hi <= lo:
                return
            source.append(slice(lo - origin[axis], hi - origin[axis]))
            target.append(slice(lo - a, hi - a))
        out[tuple(target)] = block[tuple(source)]

    def block_path(self, grid: tuple[int, ...]) -> Path:
        """The file of block ``grid`` (given slowest axis first, stored fastest first)."""
        return self.folder.joinpath(*(str(g) for g in reversed(grid)))

    def _read_block(self, grid: tuple[int, ...]) -> np.ndarray | None:
        path = self.block_path(grid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        where = "block " + "/".join(str(g) for g in reversed(grid))
        if len(data) < _HEADER.size:
            raise VolumeError("truncated N5 block header", source=path, where=where)
        mode, ndim = _HEADER.unpack_from(data, 0)
        if ndim != self.ndim or mode not in (0, 1):
            raise VolumeError(
                f"N5 block of mode {mode} with {ndim} axes does not fit a {self.ndim}-D dataset",
                source=path,
                where=where,
            )
        offset = _HEADER.size + 4 * ndim + (4 if mode == 1 else 0)  # mode 1 adds a count
        if len(data) < offset:
            raise VolumeError("truncated N5 block header", source=path, where=where)
        sizes = struct.unpack_from(f">{ndim}I", data, _HEADER.size)
        try:
            raw = self._decode(data[offset:])
        except Exception as exc:  # each codec fails its own way on corrupt data
            raise VolumeError(
                f"cannot decompress N5 block: {exc}", source=path, where=where
            ) from None
        shape = tuple(reversed(sizes))
        needed = int(np.prod(shape)) * self.stored_dtype.itemsize
        if len(raw) < needed:
            raise VolumeError(
                f"N5 block holds {len(raw)} bytes, its header promises {needed}",
                source=path,
                where=where,
            )
        return np.frombuffer(raw, dtype=self.stored_dtype, count=int(np.prod(shape))).reshape(shape)


def write_n5_dataset(
    folder: Path,
    array: np.ndarray,
    *,
    block_size: tuple[int, ...],
    compression: Mapping | None = None,
    attributes: Mapping | None = None,
) -> Path:
    """Write ``array`` (numpy order, slowest axis first) as an N5 dataset at ``folder``.

    :param block_size: block shape in numpy order.
    :param compression: an N5 compression description; default gzip.
    :param attributes: extra attributes stored beside the N5 ones.
    :returns: ``folder``.
    """
    folder = Path(folder)
    array = np.asarray(array)
    names = {np.dtype(v).newbyteorder("="): k for k, v in N5_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in names:
        raise ValueError(f"{folder}: N5 cannot store {array.dtype}")
    if len(block_size) != array.ndim:
        raise ValueError(f"{folder}: block_size needs {array.ndim} sizes")
    compression = dict(compression or {"type": "gzip", "level": -1})
    _, encode = _codec(compression, folder)
    write_attributes(
        folder,
        {
            **dict(attributes or {}),
            "dimensions": list(reversed(array.shape)),
            "blockSize": list(reversed([int(b) for b in block_size])),
            "dataType": names[native],
            "compression": compression,
        },
    )
    stored = np.dtype(">" + N5_DTYPES[names[native]])
    for grid in product(*(range(-(-n // b)) for n, b in zip(array.shape, block_size))):
        box = tuple(
            slice(g * b, min((g + 1) * b, n)) for g, b, n in zip(grid, block_size, array.shape)
        )
        block = np.ascontiguousarray(array[box], dtype=stored)
        header = _HEADER.pack(0, array.ndim) + struct.pack(
            f">{array.ndim}I", *reversed(block.shape)
        )
        path = folder.joinpath(*(str(g) for g in reversed(grid)))
        path.parent.mkdir(parents=True, exist_ok=True)
        with AtomicFile(path) as target:
            target.file.write(header + encode(block.tobytes()))
    return folder
