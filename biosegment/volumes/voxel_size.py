"""Read the physical voxel size (nm, z y x) that a TIFF file records, when it records one.

ImageJ and Fiji store the pixel width and height in the TIFF resolution tags (pixels per
``unit``) and the slice spacing and the unit in the image description. Plain TIFF resolution
tags (often a meaningless 72 dpi) give no slice spacing, and a voxel size without a z spacing
would mislead, so files without an ImageJ-style unit report ``None``, as do files that record
no calibration at all.
"""

from __future__ import annotations

import math

__all__ = ["NM_PER_UNIT", "voxel_size_from_tiff", "nm_per_unit"]

#: Length units ImageJ writes in its ``unit=`` entry, as nanometres per unit.
NM_PER_UNIT = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "nanometers": 1.0,
    "nanometres": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "\\u00b5m": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "micrometers": 1e3,
    "micrometres": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
}


def nm_per_unit(unit: object) -> float | None:
    """Nanometres in one ``unit`` (ImageJ spelling, case-insensitive), or None if unknown."""
    if not isinstance(unit, str):
        return None
    return NM_PER_UNIT.get(unit.strip().casefold())


def _pixels_per_unit(tag_value: object) -> float | None:
    """A RATIONAL resolution tag (numerator, denominator) as a positive float, else None."""
    try:
        numerator, denominator = tag_value  # type: ignore[misc]
        value = float(numerator) / float(denominator)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def voxel_size_from_tiff(
    tags: dict,
    imagej_metadata: dict | None,
) -> tuple[float, float, float] | None:
    """Voxel size in nm (z, y, x) from a first page's resolution tags and its ImageJ metadata.

    ``imagej_metadata`` may also be a tifffile JSON description with ``unit``/``spacing``
    keys, which BioSegment writes into BigTIFF files. ``tags`` maps ``XResolution`` and
    ``YResolution`` to their (numerator, denominator) values. Without a known ``unit`` the
    file is uncalibrated. ImageJ omits ``spacing`` when it equals one unit.
    """
    x_per_unit = _pixels_per_unit(tags.get("XResolution"))
    y_per_unit = _pixels_per_unit(tags.get("YResolution")) or x_per_unit
    if x_per_unit is None or not imagej_metadata:
        return None
    scale = nm_per_unit(imagej_metadata.get("unit"))
    if scale is None:
        return None
    try:
        spacing = float(imagej_metadata.get("spacing", 1.0))
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(spacing) and spacing > 0):
        return None
    return (spacing * scale, scale / y_per_unit, scale / x_per_unit)
