"""Read the stack shape and physical voxel size that an OME-TIFF records in its XML header.

Microscope software and Bio-Formats conversions write OME-TIFF: the first page's description
is an OME-XML document whose ``Pixels`` element gives the number of z slices, channels and
time points and the physical pixel sizes. Only the first image of the document is used,
matching how BioSegment reads one volume per file.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

from biosegment.volumes.voxel_size import nm_per_unit

__all__ = ["OmeStack", "read_ome_stack"]

# An OME header is a few kilobytes; a huge one is not worth parsing while probing.
_MAX_DESCRIPTION_CHARS = 4_000_000


@dataclass(frozen=True, slots=True)
class OmeStack:
    """Dimensions and calibration of the first image in an OME-XML document."""

    size_z: int
    size_c: int
    size_t: int
    voxel_size: tuple[float, float, float] | None  #: nm, (z, y, x)


def _positive_int(value: str | None) -> int:
    try:
        number = int(value) if value is not None else 1
    except ValueError:
        return 1
    return max(number, 1)


def _physical_size_nm(pixels: ElementTree.Element, axis: str) -> float | None:
    value = pixels.get(f"PhysicalSize{axis}")
    if value is None:
        return None
    scale = nm_per_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))  # OME's default unit
    try:
        size = float(value) * scale if scale is not None else None
    except ValueError:
        return None
    return size if size is not None and size > 0 else None


def read_ome_stack(description: str | None) -> OmeStack | None:
    """Facts from an OME-XML ``description``, or None if it is not readable OME-XML."""
    if not description or len(description) > _MAX_DESCRIPTION_CHARS:
        return None
    try:
        document = ElementTree.fromstring(description)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in document.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = [_physical_size_nm(pixels, axis) for axis in ("Z", "Y", "X")]
    voxel_size = tuple(sizes) if all(s is not None for s in sizes) else None
    return OmeStack(
        size_z=_positive_int(pixels.get("SizeZ")),
        size_c=_positive_int(pixels.get("SizeC")),
        size_t=_positive_int(pixels.get("SizeT")),
        voxel_size=voxel_size,
    )  # type: ignore[arg-type]
