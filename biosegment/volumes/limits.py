"""Bounds on what a volume's headers may claim before BioSegment agrees to read it.

A header is a promise, not evidence: a 200-byte ``.zarray`` can claim 10^36 voxels in chunks of
one slice, and the chunk indexer of a library that believes it spins for hours on a single
thumbnail. Every reader checks the shape and storage chunks it found in the headers against
:class:`VolumeLimits` (``[limits]`` in ``biosegment.toml``) and refuses an absurd volume with a
:class:`~biosegment.errors.VolumeError` that names the file, the field and the limit, so the
catalog marks the dataset ``error`` at probe time and nothing ever reads it.
Likewise a TIFF whose compressed strips or tiles each unpack to more than ``max_decode_mb``
(:func:`check_decode_unit`): a piece is decoded whole whatever part of it is read.

The limits in force are process-wide (:func:`set_volume_limits`, called once by the daemon, the
CLI and the web app with the configured values) because readers are opened from many places
that have no config at hand; tests and callers that know better pass ``limits=`` explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from biosegment.errors import VolumeError

__all__ = [
    "VolumeLimits",
    "DEFAULT_LIMITS",
    "set_volume_limits",
    "volume_limits",
    "check_volume_claims",
    "limits_from",
    "check_decode_unit",
]


@dataclass(frozen=True, slots=True)
class VolumeLimits:
    """The most a single volume may claim. Defaults are documented in ``biosegment.toml``."""

    #: voxels in the whole volume (z * y * x): 10^12 is a 1 TB uint8 stack
    max_voxels: int = 10**12
    #: pixels in one slice (y * x): 10^10 is a 100000 x 100000 slice
    max_slice_pixels: int = 10**10
    #: storage chunks (or shards) a chunked volume is cut into
    max_chunks: int = 10**8
    #: MiB one decode unit (a compressed strip or tile, which is decoded whole) may unpack to
    max_decode_mb: int = 256


DEFAULT_LIMITS = VolumeLimits()


def limits_from(section) -> VolumeLimits:
    """The volume limits of a config's ``[limits]`` section (any object with those fields)."""
    return VolumeLimits(
        max_voxels=int(section.max_voxels),
        max_slice_pixels=int(section.max_slice_pixels),
        max_chunks=int(section.max_chunks),
        max_decode_mb=int(section.max_decode_mb),
    )


_current = DEFAULT_LIMITS


def set_volume_limits(limits: VolumeLimits) -> None:
    """Make ``limits`` the ones every reader of this process checks against."""
    global _current
    _current = limits


def volume_limits() -> VolumeLimits:
    """The limits in force in this process."""
    return _current


def check_volume_claims(
    shape: Sequence[int],
    chunks: Sequence[int] | None,
    source: object,
    *,
    where: str | None = None,
    limits: VolumeLimits | None = None,
) -> None:
    """Refuse a (z, y, x) ``shape`` (and its storage ``chunks``) beyond ``limits``.

    :raises VolumeError: naming ``source`` and the claim that is too large.
    """
    limits = limits or _current
    dims = [int(d) for d in shape]
    place = f"{where}: shape" if where else "shape"
    voxels = math.prod(dims)
    if voxels > limits.max_voxels:
        raise VolumeError(
            f"claims {_shape_text(dims)} = {voxels:.3g} voxels, more than the "
            f"limit of {limits.max_voxels:.3g} (limits.max_voxels in "
            "biosegment.toml); the header is probably wrong",
            source=source,
            where=place,
        )
    slice_pixels = math.prod(dims[-2:])
    if slice_pixels > limits.max_slice_pixels:
        raise VolumeError(
            f"claims slices of {dims[-2]} x {dims[-1]} = {slice_pixels:.3g} pixels, "
            f"more than the limit of {limits.max_slice_pixels:.3g} "
            "(limits.max_slice_pixels in biosegment.toml)",
            source=source,
            where=place,
        )
    if chunks:
        grid = [int(c) for c in chunks][-len(dims) :]
        if any(c < 1 for c in grid):
            raise VolumeError(
                f"claims storage chunks of {_shape_text(grid)}; every chunk side "
                "must be at least 1",
                source=source,
                where=f"{where}: chunks" if where else "chunks",
            )
        count = math.prod(-(-d // c) for d, c in zip(dims, grid))
        if count > limits.max_chunks:
            raise VolumeError(
                f"claims {count:.3g} storage chunks of {_shape_text(grid)}, more "
                f"than the limit of {limits.max_chunks:.3g} (limits.max_chunks in "
                "biosegment.toml)",
                source=source,
                where=f"{where}: chunks" if where else "chunks",
            )


def check_decode_unit(
    kind: str,
    rows: int,
    cols: int,
    itemsize: int,
    source: object,
    *,
    where: str | None = None,
    limits: VolumeLimits | None = None,
) -> None:
    """Refuse a file whose smallest decodable piece (``kind``: strip, tile, page) is too large.

    A compressed strip or tile is unpacked whole even when a request wants a few of its
    pixels, so a 1 MB file holding one zlib strip of 30000 x 30000 pixels would cost 900 MB
    of memory per tile shown. Such a file is refused before anything decodes it.

    :raises VolumeError: naming ``source``, the piece's size and what to do about it.
    """
    limits = limits or _current
    needed = int(rows) * int(cols) * int(itemsize)
    if needed > limits.max_decode_mb * 2**20:
        raise VolumeError(
            f"one {kind} of {rows} x {cols} pixels needs {_mib(needed)} MiB to decode, more "
            f"than the limit of {limits.max_decode_mb} MiB (limits.max_decode_mb in "
            "biosegment.toml), and it is decoded whole for every view of it; re-save the "
            "file in smaller strips or in tiles (for example 512 x 512 tiles)",
            source=source,
            where=where,
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f}" if size >= 10 * 2**20 else f"{size / 2**20:.1f}"


def _shape_text(dims: Sequence[int]) -> str:
    return " x ".join(str(d) for d in dims)
