"""Read and write the OME-Zarr (OME-NGFF) metadata of a multiscale image, versions 0.4 and 0.5.

An OME-Zarr image is a Zarr group whose attributes describe a resolution pyramid: the axes
(name, type, unit), and per level the array's path and its scale (and optional translation)
into physical space. Version 0.4 keeps that in the group's ``multiscales`` attribute of a Zarr
v2 store; version 0.5 moves it under an ``ome`` key of a Zarr v3 ``zarr.json`` and states the
version once there. Segmentations add ``image-label`` (colours and class names per label
value). :func:`read_multiscale` turns either layout into a :class:`Multiscale` value;
:func:`multiscale_attributes` and :func:`label_attributes` build the attributes BioSegment
writes. Nothing here touches pixels or files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from biosegment.errors import VolumeError
from biosegment.volumes.voxel_size import nm_per_unit

__all__ = [
    "NGFF_VERSIONS",
    "Axis",
    "ScaleLevel",
    "Multiscale",
    "ome_attributes",
    "read_multiscale",
    "multiscale_attributes",
    "label_attributes",
    "channel_attributes",
    "is_bioformats2raw",
]

#: OME-Zarr versions BioSegment reads and writes.
NGFF_VERSIONS = ("0.4", "0.5")

# The spec's unit names for lengths; BioSegment writes nanometres.
_NANOMETER = "nanometer"


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of an OME-Zarr image: ``z``, ``y``, ``x`` (space), ``c`` (channel), ``t`` (time)."""

    name: str
    type: str | None = None
    unit: str | None = None

    @property
    def is_space(self) -> bool:
        if self.type is not None:
            return self.type == "space"
        return self.name.lower() in ("z", "y", "x")


@dataclass(frozen=True, slots=True)
class ScaleLevel:
    """One resolution level: the array path and its full scale (and translation) per axis."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Multiscale:
    """The first multiscale image described by a group's attributes."""

    version: str
    axes: tuple[Axis, ...]
    levels: tuple[ScaleLevel, ...]
    name: str | None = None

    @property
    def space_axes(self) -> tuple[int, ...]:
        """Indices of the spatial axes, in stored order."""
        return tuple(i for i, axis in enumerate(self.axes) if axis.is_space)

    def voxel_size_nm(self, level: int = 0) -> tuple[float, ...] | None:
        """The spatial voxel size of ``level`` in nm, or None without known length units."""
        sizes = []
        scale = self.levels[level].scale
        for index in self.space_axes:
            factor = nm_per_unit(self.axes[index].unit)
            if factor is None:
                return None
            sizes.append(scale[index] * factor)
        return tuple(sizes)

    def factors(self, level: int) -> tuple[float, ...]:
        """How many level-0 voxels one voxel of ``level`` spans along each spatial axis."""
        base, scale = self.levels[0].scale, self.levels[level].scale
        return tuple(_tidy(scale[i] / base[i]) for i in self.space_axes)


def _tidy(value: float) -> float:
    """2.0000000001 -> 2.0: scales written as decimals should give clean factors."""
    nearest = round(value)
    return float(nearest) if nearest and math.isclose(value, nearest, rel_tol=1e-6) else value


def is_bioformats2raw(attributes: Mapping) -> bool:
    """True for the bioformats2raw layout, whose images live in numbered child groups."""
    ome = attributes.get("ome")
    marker = ome.get("bioformats2raw.layout") if isinstance(ome, Mapping) else None
    return (marker or attributes.get("bioformats2raw.layout")) == 3


def ome_attributes(attributes: Mapping) -> tuple[str | None, Mapping]:
    """The OME part of a group's attributes and its version (0.5: under ``ome``; 0.4: top level)."""
    ome = attributes.get("ome")
    if isinstance(ome, Mapping):
        version = ome.get("version")
        return (str(version) if version is not None else None), ome
    return None, attributes


def read_multiscale(attributes: Mapping, *, source: object) -> Multiscale | None:
    """The first multiscale image in a group's attributes; None when the group has none.

    :raises VolumeError: naming ``source`` and the key when the metadata is malformed.
    """
    version, ome = ome_attributes(attributes)
    entries = ome.get("multiscales")
    if entries is None:
        return None
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], Mapping):
        raise VolumeError(
            "'multiscales' must be a non-empty list of objects", source=source, where="multiscales"
        )
    entry = entries[0]
    version = version or entry.get("version")
    if version is not None and str(version) not in ("0.1", "0.2", "0.3", *NGFF_VERSIONS):
        raise VolumeError(
            f"OME-Zarr version {version} is not supported; BioSegment reads "
            + " and ".join(NGFF_VERSIONS),
            source=source,
            where="multiscales[0]",
        )
    axes = _axes(entry.get("axes"), source)
    datasets = entry.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise VolumeError(
            "'datasets' must list at least one level",
            source=source,
            where="multiscales[0].datasets",
        )
    overall_scale, overall_shift = _transforms(
        entry.get("coordinateTransformations"),
        len(axes),
        source,
        "multiscales[0].coordinateTransformations",
    )
    levels = []
    for index, dataset in enumerate(datasets):
        where = f"multiscales[0].datasets[{index}]"
        if not isinstance(dataset, Mapping) or not isinstance(dataset.get("path"), str):
            raise VolumeError("each level needs a 'path'", source=source, where=where)
        scale, shift = _transforms(
            dataset.get("coordinateTransformations"),
            len(axes),
            source,
            f"{where}.coordinateTransformations",
        )
        full_scale = tuple(s * o for s, o in zip(scale, overall_scale))
        translation = None
        if shift is not None or overall_shift is not None:
            own = shift or (0.0,) * len(axes)
            outer = overall_shift or (0.0,) * len(axes)
            translation = tuple(t * o + u for t, o, u in zip(own, overall_scale, outer))
        levels.append(ScaleLevel(dataset["path"], full_scale, translation))
    name = entry.get("name")
    return Multiscale(
        version=str(version or "0.4"),
        axes=axes,
        levels=tuple(levels),
        name=name if isinstance(name, str) else None,
    )


def _axes(raw: object, source: object) -> tuple[Axis, ...]:
    if raw is None:
        # Versions before 0.3 had no axes: they were always (t, c, z, y, x).
        return tuple(Axis(n) for n in "tczyx")
    if not isinstance(raw, list) or not raw:
        raise VolumeError(
            "'axes' must be a non-empty list", source=source, where="multiscales[0].axes"
        )
    axes = []
    for index, item in enumerate(raw):
        if isinstance(item, str):  # version 0.3 listed bare names
            axes.append(Axis(item))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            axes.append(Axis(item["name"], item.get("type"), item.get("unit")))
        else:
            raise VolumeError(
                "each axis needs a 'name'", source=source, where=f"multiscales[0].axes[{index}]"
            )
    return tuple(axes)


def _transforms(
    raw: object, ndim: int, source: object, where: str
) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """The scale (ones when absent) and translation (None when absent) of a transform list."""
    scale: tuple[float, ...] = (1.0,) * ndim
    translation = None
    if raw is None:
        return scale, translation
    if not isinstance(raw, list):
        raise VolumeError("must be a list of transformations", source=source, where=where)
    for index, item in enumerate(raw):
        kind = item.get("type") if isinstance(item, Mapping) else None
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise VolumeError(
                f"transformation {kind!r} is not supported (only scale and translation)",
                source=source,
                where=f"{where}[{index}]",
            )
        values = item.get(kind)
        if (
            not isinstance(values, list)
            or len(values) != ndim
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        ):
            raise VolumeError(
                f"{kind} must hold {ndim} finite numbers (inline 'path' "
                "transformations are not supported)",
                source=source,
                where=f"{where}[{index}]",
            )
        if kind == "scale":
            if any(v <= 0 for v in values):
                raise VolumeError(
                    "scale values must be positive", source=source, where=f"{where}[{index}]"
                )
            scale = tuple(float(v) for v in values)
        else:
            translation = tuple(float(v) for v in values)
    return scale, translation


def multiscale_attributes(
    version: str,
    *,
    level_paths: Sequence[str],
    level_factors: Sequence[Sequence[float]],
    voxel_size: tuple[float, float, float] | None,
    name: str,
    downsampling: str,
    channel_axis: bool = False,
) -> dict:
    """Group attributes for a (z, y, x) multiscale image in OME-Zarr ``version``.

    :param level_paths: array path of each level, level 0 first.
    :param level_factors: (z, y, x) level-0 voxels per voxel of each level.
    :param voxel_size: level-0 voxel size in nm; None writes unit-less scales of 1 voxel.
    :param name: the image's name.
    :param downsampling: how the levels were made (``nearest`` for labels, ``mean`` for
        images whose levels average 2x2 pixels).
    :param channel_axis: the arrays are (c, z, y, x): a ``c`` axis of type ``channel`` comes
        first, with a scale of 1.
    """
    if version not in NGFF_VERSIONS:
        raise ValueError(f"OME-Zarr version must be one of {', '.join(NGFF_VERSIONS)}")
    base = voxel_size or (1.0, 1.0, 1.0)
    unit = {"unit": _NANOMETER} if voxel_size is not None else {}
    axes = [{"name": n, "type": "space", **unit} for n in ("z", "y", "x")]
    lead: list[float] = []
    if channel_axis:
        axes.insert(0, {"name": "c", "type": "channel"})
        lead = [1.0]
    datasets = [
        {
            "path": path,
            "coordinateTransformations": [
                {
                    "type": "scale",
                    "scale": lead + [float(b) * float(f) for b, f in zip(base, factors)],
                }
            ],
        }
        for path, factors in zip(level_paths, level_factors)
    ]
    method = (
        "mean of 2x2 pixels along y and x"
        if downsampling == "mean"
        else "every 2nd voxel along y and x"
    )
    multiscale: dict = {
        "name": name,
        "axes": axes,
        "datasets": datasets,
        "type": downsampling,
        "metadata": {"method": method, "writer": "BioSegment"},
    }
    if version == "0.4":
        return {"multiscales": [{"version": version, **multiscale}]}
    return {"ome": {"version": version, "multiscales": [multiscale]}}


def label_attributes(
    version: str, classes: Sequence[Mapping], *, source_image: str | None = None
) -> dict:
    """The ``image-label`` object: per class id its colour (RGBA) and name.

    ``classes`` are ``{"id", "name", "color"}`` dicts as in a model card (``#rrggbb`` colours;
    grey when missing). Background (id 0) gets alpha 0, so viewers draw it transparent. It belongs
    beside ``multiscales``: in the ``ome`` namespace for 0.5, at the top level for 0.4.
    """
    colors, properties = [], []
    for entry in classes:
        value = int(entry["id"])
        properties.append({"label-value": value, "class": str(entry.get("name", value))})
        rgb = _rgb(entry.get("color")) or [128, 128, 128]
        colors.append({"label-value": value, "rgba": [*rgb, 0 if value == 0 else 255]})
    label: dict = {"colors": colors, "properties": properties}
    if source_image is not None:
        label["source"] = {"image": source_image}
    return {"version": version, **label} if version == "0.4" else label


def channel_attributes(names: Sequence[str], colors: Sequence[object]) -> dict:
    """The ``omero`` object naming each channel of a (c, z, y, x) image of uint8 values.

    Viewers (napari, Fiji, OMERO) take each channel's label, colour (``rrggbb``) and display
    window from it. It belongs beside ``multiscales``: in the ``ome`` namespace for 0.5, at the
    top level for 0.4.
    """
    channels = []
    for name, color in zip(names, colors):
        rgb = _rgb(color) or [255, 255, 255]
        channels.append(
            {
                "label": str(name),
                "color": "".join(f"{v:02X}" for v in rgb),
                "active": True,
                "window": {"min": 0, "max": 255, "start": 0, "end": 255},
            }
        )
    return {"channels": channels, "rdefs": {"model": "color"}}


def _rgb(color: object) -> list[int] | None:
    if not isinstance(color, str) or len(color) != 7 or not color.startswith("#"):
        return None
    try:
        return [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    except ValueError:
        return None
