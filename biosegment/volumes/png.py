"""Single PNG images: header probing, decoding, and the uint8 slice helpers for annotations.

Probing parses the PNG's own IHDR chunk (33 bytes) instead of asking Pillow, so a folder of
thousands of slices is checked without touching pixel data. Decoding goes through Pillow and
every failure becomes a VolumeError naming the file. Annotation slices
(``annotations/<dataset>/<name>/z00012.png``) are written with the same temporary-name-and-rename
rule as volumes, so the viewer never loads half a slice.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from biosegment.errors import VolumeError
from biosegment.volumes.atomic import AtomicFile
from biosegment.volumes.failures import checked_dtype, multichannel_error, volume_errors

__all__ = [
    "PngHeader",
    "read_png_header",
    "decode_png",
    "read_png_slice",
    "write_png_slice",
    "annotation_slice_name",
]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sIIBBBBBI")  # length, type, width, height, depth, colour, ..., crc
_COLOUR_NAMES = {2: "RGB colour", 4: "grey + alpha channels", 6: "RGBA colour"}


@dataclass(frozen=True, slots=True)
class PngHeader:
    """What a PNG's header says: its size and the array type it decodes to."""

    height: int
    width: int
    dtype: np.dtype


def read_png_header(path: Path) -> PngHeader:
    """Parse the IHDR chunk of ``path``; raises VolumeError for anything BioSegment cannot read."""
    path = Path(path)
    with volume_errors(path, "reading the PNG header"):
        with open(path, "rb") as handle:
            head = handle.read(len(_SIGNATURE) + _IHDR.size)
    if not head:
        raise VolumeError("empty file (0 bytes); is it still being copied?", source=path)
    if not head.startswith(_SIGNATURE):
        raise VolumeError("not a PNG file (bad signature)", source=path)
    if len(head) < len(_SIGNATURE) + _IHDR.size:
        raise VolumeError("corrupt PNG: header cut short", source=path)
    length, kind, width, height, depth, colour, _, _, _, crc = _IHDR.unpack_from(head, 8)
    if length != 13 or kind != b"IHDR" or zlib.crc32(head[12:29]) != crc:
        raise VolumeError("corrupt PNG: damaged IHDR header", source=path)
    if width == 0 or height == 0:
        raise VolumeError("corrupt PNG: zero width or height", source=path)
    if colour in _COLOUR_NAMES:
        raise multichannel_error(path, _COLOUR_NAMES[colour])
    if colour == 3:  # palette images decode to their indices: label PNGs are often saved so
        return PngHeader(height, width, np.dtype("uint8"))
    if colour == 0 and depth in (8, 16):
        return PngHeader(height, width, np.dtype("uint8" if depth == 8 else "uint16"))
    if colour == 0:
        checked_dtype(None, path, described_as=f"{depth}-bit greyscale")
    raise VolumeError(f"corrupt PNG: unknown colour type {colour}", source=path)


def decode_png(path: Path, *, where: str | None = None) -> np.ndarray:
    """Decode a greyscale or palette PNG to a (y, x) uint8 or uint16 array."""
    path = Path(path)
    with volume_errors(path, "decoding the PNG", where=where):
        try:
            with Image.open(path) as image:
                image.load()
                mode = image.mode
                if mode in ("RGB", "RGBA", "LA", "La", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
                    raise multichannel_error(path, f"{mode} pixels", where=where)
                if mode == "1":
                    checked_dtype(None, path, where=where, described_as="1-bit greyscale")
                pixels = np.asarray(image)
        except Image.DecompressionBombError as exc:
            raise VolumeError(
                f"image too large for Pillow's decoder limit ({exc})", source=path, where=where
            ) from None
    if pixels.ndim != 2:
        raise multichannel_error(path, f"an array of shape {pixels.shape}", where=where)
    if pixels.dtype.kind in "iu" and pixels.dtype.itemsize > 2:
        # older Pillow versions widen 16-bit greyscale to 32-bit integers ("I" mode)
        pixels = pixels.astype(np.uint16)
    checked_dtype(pixels.dtype, path, where=where)
    return np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))


def read_png_slice(path: Path, *, expected: tuple[int, int] | None = None) -> np.ndarray:
    """Read one uint8 label or annotation slice; VolumeError if it is not 8-bit greyscale.

    With ``expected`` (height, width), a file whose header claims another size is refused
    before anything is decoded, so a small file claiming gigapixels costs nothing.
    """
    if expected is not None:
        header = read_png_header(path)
        if (header.height, header.width) != tuple(expected):
            raise VolumeError(
                f"slice is {header.width}x{header.height} pixels, expected "
                f"{expected[1]}x{expected[0]}",
                source=path,
            )
    pixels = decode_png(path)
    if pixels.dtype != np.uint8:
        raise VolumeError(
            f"expected an 8-bit slice of class ids, found {pixels.dtype.name}", source=path
        )
    return pixels


def write_png_slice(path: Path, array2d: np.ndarray) -> Path:
    """Write a (y, x) uint8 array as a greyscale PNG, atomically; returns ``path``.

    A previous file at ``path`` stays intact until the new one is complete.
    """
    pixels = np.asarray(array2d)
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(
            f"{path}: a slice must be a 2-D uint8 array, got {pixels.ndim}-D {pixels.dtype}"
        )
    image = Image.fromarray(np.ascontiguousarray(pixels))  # uint8 2-D becomes mode "L"
    with AtomicFile(Path(path)) as target:
        image.save(target.file, format="PNG")
    return Path(path)


def annotation_slice_name(z: int) -> str:
    """File name of annotation slice ``z`` (``z00012.png``), zero-padded so names sort too."""
    if z < 0:
        raise ValueError(f"slice index must be >= 0, got {z}")
    return f"z{z:05d}.png"
