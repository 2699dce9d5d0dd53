"""Read MRC files (``mrc``: cryo-EM maps, tomograms, image stacks) through a memory map.

The pixels of an MRC file follow a 1024-byte header (plus an optional extended header) as one
block, so a slice costs exactly its bytes. Sections are read in stored order (z, y, x for the
usual column-row-section layout). The voxel size comes from the cell dimensions (Å, converted
to nm). Pixel types are mapped onto the three BioSegment reads: mode 2 (float32) and mode 6
(uint16) as they are, mode 12 (float16) widened to float32, mode 0 bytes as uint8 (IMOD marks
unsigned bytes in its header; truly signed bytes are shifted by 128), and mode 1 (int16)
shifted by 32768 into uint16, which keeps the order and contrast of the values. Complex modes
are refused. Compressed (``.gz``, ``.bz2``) files cannot be memory-mapped: decompress them first.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np

from biosegment.errors import VolumeError
from biosegment.volumes.array_reader import ArrayVolumeReader, stack_layout
from biosegment.volumes.base import VolumeInfo
from biosegment.volumes.failures import checked_file_size, volume_errors

__all__ = ["probe_mrc", "open_mrc", "IMOD_STAMP", "IMOD_SIGNED_BYTES"]

#: IMOD writes this number at byte 152 of the header and flags at byte 156.
IMOD_STAMP = 1146047817
#: Bit of the IMOD flags that says mode-0 bytes are signed.
IMOD_SIGNED_BYTES = 1

_MODE_NAMES = {3: "complex int16", 4: "complex float32", 101: "4-bit packed"}


def _imod_unsigned_bytes(header) -> bool:
    """True when IMOD's stamp says mode-0 bytes are unsigned (its default)."""
    extra = bytes(header.extra2)
    if len(extra) < 48:
        return False
    order = "<" if header.machst.tobytes()[0] == 0x44 else ">"
    stamp = int(np.frombuffer(extra[40:44], dtype=order + "i4")[0])
    flags = int(np.frombuffer(extra[44:48], dtype=order + "i4")[0])
    return stamp == IMOD_STAMP and not flags & IMOD_SIGNED_BYTES


def _conversion(mode: int, unsigned_bytes: bool, path: Path):
    """(dtype BioSegment sees, function from stored pixels to it)."""
    if mode == 0:
        if unsigned_bytes:
            return np.dtype("uint8"), lambda raw: np.array(raw).view(np.uint8)
        # Flipping the sign bit adds 128 to every two's-complement byte.
        return np.dtype("uint8"), lambda raw: np.array(raw).view(np.uint8) ^ np.uint8(0x80)
    if mode == 1:
        return (
            np.dtype("uint16"),
            lambda raw: np.array(raw, dtype=np.int16).view(np.uint16) ^ np.uint16(0x8000),
        )
    if mode == 2:
        return np.dtype("float32"), lambda raw: np.array(raw, dtype=np.float32)
    if mode == 6:
        return np.dtype("uint16"), lambda raw: np.array(raw, dtype=np.uint16)
    if mode == 12:
        return np.dtype("float32"), lambda raw: np.array(raw, dtype=np.float32)
    name = _MODE_NAMES.get(mode, f"mode {mode}")
    raise VolumeError(
        f"MRC pixel type {name} is not supported; use mode 0, 1, 2, 6 or 12",
        source=path,
        where="header mode",
    )


def _open(path: Path):
    checked_file_size(path)
    with volume_errors(path, "reading the MRC header"):
        with warnings.catch_warnings():
            # permissive mode reports header oddities as warnings; real damage still raises
            warnings.simplefilter("ignore", RuntimeWarning)
            handle = mrcfile.mmap(path, mode="r", permissive=True)
    if handle.data is None:
        reason = _missing_data_reason(handle, path)
        handle.close()
        raise VolumeError(reason, source=path)
    return handle


# bytes per voxel of each MRC mode (complex modes included, so their claim can be told)
_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2}


def _missing_data_reason(handle, path: Path) -> str:
    """Why mrcfile found no data: usually a header that claims more than the file holds."""
    header = handle.header
    try:
        nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
        per_voxel = _MODE_BYTES.get(int(header.mode))
        start = 1024 + int(header.nsymbt)
        held = max(0, path.stat().st_size - start)
    except (AttributeError, ValueError, OSError):
        return "no image data after the header (truncated or not an MRC file)"
    if per_voxel is None:
        return f"no image data after the header (unknown mode {int(header.mode)})"
    claimed = nx * ny * nz * per_voxel
    return (
        f"truncated: the header claims {nz} x {ny} x {nx} voxels of mode {int(header.mode)} "
        f"({claimed} bytes) but the file holds {held} bytes after the header"
    )


def _describe(handle, path: Path):
    header = handle.header
    mode = int(header.mode)
    dtype, convert = _conversion(mode, mode == 0 and _imod_unsigned_bytes(header), path)
    data = handle.data
    layout = stack_layout(data, data.shape, None, path)
    voxel_size = None
    sizes = handle.voxel_size
    angstroms = (float(sizes.z), float(sizes.y), float(sizes.x))
    if layout.shape[0] > 1 and all(np.isfinite(v) and v > 0 for v in angstroms):
        voxel_size = tuple(v / 10.0 for v in angstroms)
    info = VolumeInfo(
        path=path,
        file_type="mrc",
        shape=layout.shape,
        dtype=dtype.name,
        voxel_size=voxel_size,
        files=(path,),
    )
    return info, layout, convert


def probe_mrc(path: Path) -> VolumeInfo:
    """Header facts of an MRC file; maps the file but reads no pixels."""
    path = Path(path)
    handle = _open(path)
    try:
        return _describe(handle, path)[0]
    finally:
        handle.close()


def open_mrc(path: Path) -> ArrayVolumeReader:
    """Open an MRC file for lazy reading through a memory map."""
    path = Path(path)
    handle = _open(path)
    try:
        info, layout, convert = _describe(handle, path)
    except BaseException:
        handle.close()
        raise
    return _MrcReader(info, layout.array, lead=layout.lead, convert=convert, on_close=handle.close)


class _MrcReader(ArrayVolumeReader):
    @property
    def is_memory_mapped(self) -> bool:
        return True
