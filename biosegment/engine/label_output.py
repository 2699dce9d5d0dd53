"""Write a finished segmentation in the format a lab chose: a TIFF stack or an OME-Zarr image.

Segment jobs collect their z-blocks in a parts folder (:mod:`biosegment.engine.inference`).
:func:`assemble_labels` turns the parts into the segmentation's label volume: ``labels.tif``
(the default, which the old stack and every tool reads) or ``labels.ome.zarr`` (an OME-Zarr
label image with a resolution pyramid, class names and colours, which napari and Fiji open as
labels and the viewer zooms through quickly). The choice comes from the ``[engine]
segmentation_format`` config key or a job's ``output_format`` parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from biosegment.engine._parts import PartsFolder, assemble_parts
from biosegment.engine.model_card import default_classes
from biosegment.errors import InputError
from biosegment.folder_names import SEGMENTATION_LABELS, SEGMENTATION_LABELS_ZARR
from biosegment.volumes import LabelVolumeWriter
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter
from biosegment.volumes.slice_writer import SliceWriter

__all__ = ["SEGMENTATION_FORMATS", "LABEL_FILE_NAMES", "label_file_name", "assemble_labels"]

#: Formats a segmentation can be written in; ``tiff`` is the default.
SEGMENTATION_FORMATS = ("tiff", "ome-zarr")
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
) -> Path:
    """Write the finished parts as the label volume of segmentation ``folder``.

    :param parts_dir: the parts folder the blocks were saved into.
    :param folder: the segmentation folder (or its staging folder).
    :param output_format: ``tiff`` or ``ome-zarr`` (None: ``tiff``).
    :param voxel_size: (z, y, x) in nm, recorded in either format.
    :param classes: the model's classes, written as OME-Zarr ``image-label`` metadata.
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
        )
    return assemble_parts(parts, writer)
