"""Write a finished segmentation in the format a lab chose: a TIFF stack or an OME-Zarr image.

Segment jobs collect their z-blocks in a parts folder (:mod:`biosegment.engine.inference`).
:func:`assemble_labels` turns the parts into the segmentation's label volume: ``labels.tif``
(the default, which the old stack and every tool reads) or ``labels.ome.zarr`` (an OME-Zarr
label image with a resolution pyramid, class names and colours, which napari and Fiji open as
labels and the viewer zooms through quickly). The choice comes from the ``[engine]
segmentation_format`` config key or a job's ``output_format`` parameter.

:func:`assemble_probabilities` writes the class probabilities of parts computed with them as
``probabilities.ome.zarr``, one channel per class. Both OME-Zarr outputs follow ``[engine]
ome_zarr_version`` (0.5, or 0.4 for older readers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from biosegment.engine._parts import PartsFolder, assemble_parts
from biosegment.engine.model_card import default_classes
from biosegment.errors import InputError
from biosegment.folder_names import (
    SEGMENTATION_LABELS,
    SEGMENTATION_LABELS_ZARR,
    SEGMENTATION_PROBABILITIES,
)
from biosegment.volumes import LabelVolumeWriter
from biosegment.volumes.ome_zarr_channels import ChannelZarrWriter
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter
from biosegment.volumes.slice_writer import SliceWriter

__all__ = [
    "SEGMENTATION_FORMATS",
    "PROBABILITY_FORMATS",
    "LABEL_FILE_NAMES",
    "label_file_name",
    "assemble_labels",
    "assemble_probabilities",
]

#: Formats a segmentation can be written in; ``tiff`` is the default.
SEGMENTATION_FORMATS = ("tiff", "ome-zarr")
#: What a segmentation's class probabilities may be written as (``none``: not at all).
PROBABILITY_FORMATS = ("none", "ome-zarr")
#: The label volume's file name in a segmentation folder, per format.
LABEL_FILE_NAMES = {"tiff": SEGMENTATION_LABELS, "ome-zarr": SEGMENTATION_LABELS_ZARR}


def label_file_name(output_format: str | None) -> str:
    """``labels.tif`` or ``labels.ome.zarr``; None means the default (TIFF).

    :raises InputError: for an unknown format (``where`` is ``output_format``).
    """
    chosen = output_format or "tiff"
    if chosen not in LABEL_FILE_NAMES:
        raise InputError(
            f"unknown segmentation format {chosen!r}; use " + " or ".join(SEGMENTATION_FORMATS),
            where="output_format",
        )
    return LABEL_FILE_NAMES[chosen]


def assemble_labels(
    parts_dir: Path,
    folder: Path,
    *,
    output_format: str | None = None,
    voxel_size: tuple[float, float, float] | None = None,
    classes: Sequence[Mapping] | None = None,
    version: str = "0.5",
    keep: bool = False,
) -> Path:
    """Write the finished parts as the label volume of segmentation ``folder``.

    :param parts_dir: the parts folder the blocks were saved into.
    :param folder: the segmentation folder (or its staging folder).
    :param output_format: ``tiff`` or ``ome-zarr`` (None: ``tiff``).
    :param voxel_size: (z, y, x) in nm, recorded in either format.
    :param classes: the model's classes, written as OME-Zarr ``image-label`` metadata.
    :param version: the OME-Zarr version (``0.5`` or ``0.4``) of an OME-Zarr output.
    :param keep: leave the parts in place for further outputs (probabilities).
    :returns: the written label volume (``folder / label_file_name(output_format)``).
    :raises InputError: when blocks are missing or the format is unknown.
    """
    target = Path(folder) / label_file_name(output_format)
    parts = PartsFolder(parts_dir)
    plan = parts.complete_plan()  # before a writer makes any file
    writer: SliceWriter
    if target.name == LABEL_FILE_NAMES["tiff"]:
        writer = LabelVolumeWriter(target, plan.shape, dtype="uint8", voxel_size=voxel_size)
    else:
        writer = OmeZarrWriter(
            target,
            plan.shape,
            voxel_size=voxel_size,
            classes=list(classes or default_classes(plan.num_classes)),
            version=version,
        )
    return assemble_parts(parts, writer, keep=keep)


def assemble_probabilities(
    parts_dir: Path,
    folder: Path,
    *,
    voxel_size: tuple[float, float, float] | None = None,
    classes: Sequence[Mapping] | None = None,
    version: str = "0.5",
) -> Path:
    """Write the class probabilities of finished parts as ``folder/probabilities.ome.zarr``.

    One uint8 channel per class (255 = probability 1), named and coloured as the classes,
    streamed block by block so memory stays one block's worth. The parts stay in place.

    :raises InputError: when blocks are missing or the parts hold no probabilities.
    """
    parts = PartsFolder(parts_dir)
    plan = parts.complete_plan()
    if not plan.probabilities:
        raise InputError("these parts were computed without probabilities", source=parts_dir)
    chosen = list(classes or default_classes(plan.num_classes))
    by_id = {int(entry["id"]): entry for entry in chosen}
    entries = [by_id.get(i, {"id": i, "name": f"class {i}"}) for i in range(plan.num_classes)]
    target = Path(folder) / SEGMENTATION_PROBABILITIES
    with ChannelZarrWriter(
        target,
        (plan.num_classes, *plan.shape),
        channel_names=[str(entry.get("name", entry["id"])) for entry in entries],
        colors=[entry.get("color") for entry in entries],
        voxel_size=voxel_size,
        version=version,
    ) as writer:
        for z0, z1 in plan.blocks:
            writer.write_block(z0, parts.load(z0, z1, "probabilities"))
    return target
