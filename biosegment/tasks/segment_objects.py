"""The objects of a segment job: instances of its object classes, their table and their scores.

When a segment job counts objects (its ``objects`` option, or the classes its project marks
``"objects": true``), the runner that publishes the segmentation also writes, beside the labels:

- ``instances.tif`` (or ``instances.ome.zarr`` when the labels are OME-Zarr): uint32, one id per
  connected object of the chosen classes (3-D, faces joining), objects below the minimum size
  dropped, touching objects split by a seeded watershed when asked;
- ``objects.csv``: one row per object with its class, size, surface, centroid, box, mean
  intensity and shape (:mod:`biosegment.engine.object_table`);
- where the dataset has ground truth, object scores per class (F1 at IoU 0.5, AP-75) in the
  segmentation's card, computed on the longest run of slices the model did not train on.

Everything is computed slab by slab from the job's parts folder: the working instance volume is
a memory-mapped file in the job's folder, so memory follows the slab, not the volume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biosegment.engine._parts import PartsFolder, PartsPlan
from biosegment.engine.instances import label_instances, voxels_for_volume
from biosegment.engine.object_scores import object_scores
from biosegment.engine.object_settings import ObjectRequest, object_classes
from biosegment.engine.object_split import split_touching
from biosegment.engine.object_table import measure_objects, write_object_table
from biosegment.engine.volume_blocks import DEFAULT_BLOCK_PLANES, BlockSource, z_ranges
from biosegment.volumes import LabelVolumeWriter, is_binary_mask, read_class_ids
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter
from biosegment.volumes.slice_writer import SliceWriter

__all__ = [
    "class_id_source",
    "INSTANCES_TIFF",
    "INSTANCES_ZARR",
    "OBJECT_TABLE",
    "object_request",
    "write_objects",
    "untrained_run",
]

INSTANCES_TIFF = "instances.tif"
INSTANCES_ZARR = "instances.ome.zarr"
OBJECT_TABLE = "objects.csv"
#: Seeds of a distance split must rise this many pixels above the neck between them.
DISTANCE_H_PIXELS = 2.0
#: Seeds of a probability split must rise this far (of 255) above the saddle between them.
PROBABILITY_H = 0.1 * 255


def object_request(
    settings: Any, model_classes: Sequence[Mapping], project_classes: Sequence[Mapping]
) -> ObjectRequest | None:
    """What objects a job with these segmentation settings makes; None for none."""
    class_ids = object_classes(settings.objects, model_classes, project_classes)
    if not class_ids:
        return None
    return ObjectRequest(
        class_ids=class_ids,
        split=settings.split or "none",
        min_voxels=int(settings.min_object_voxels or 0),
        min_nm3=int(settings.min_object_nm3 or 0),
    )


def class_id_source(labels: Any) -> BlockSource:
    """Class ids of a ground-truth volume (0/255 masks read as 0/1), read box by box."""
    binary = is_binary_mask(labels)

    def read(z: slice, y: slice, x: slice) -> np.ndarray:
        block = labels.read_block(z.start, z.stop, y, x)
        return np.asarray(read_class_ids(block, binary=binary), dtype=np.uint8)

    return BlockSource(read, tuple(int(n) for n in labels.shape), "ground truth")  # type: ignore[arg-type]


def _labels_source(parts: PartsFolder, plan: PartsPlan) -> BlockSource:
    def read(z: slice, y: slice, x: slice) -> np.ndarray:
        return parts.read_box(plan, z, y, x)

    return BlockSource(read, plan.shape, "labels")


def _probability_source(parts: PartsFolder, plan: PartsPlan, class_id: int) -> BlockSource:
    def read(z: slice, y: slice, x: slice) -> np.ndarray:
        return parts.read_box(plan, z, y, x, kind="probabilities", channel=class_id)

    return BlockSource(read, plan.shape, "probability")


def _split(
    work: np.ndarray,
    request: ObjectRequest,
    parts: PartsFolder,
    plan: PartsPlan,
    class_of_id: np.ndarray,
    first_id: Mapping[int, int],
    count: Mapping[int, int],
    voxel_size: tuple[float, float, float] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Split touching objects of each class in place; the class of every id afterwards."""
    classes = np.asarray(class_of_id, np.int64)
    pieces_made = 0
    too_large: list[int] = []
    for class_id in request.class_ids:
        if not count.get(class_id):
            continue
        ids = range(first_id[class_id], first_id[class_id] + count[class_id])
        if request.split == "probability":
            result = split_touching(
                work,
                seeds="probability",
                probability=_probability_source(parts, plan, class_id),
                h=PROBABILITY_H,
                ids=ids,
            )
        else:
            pixel = 1.0 if voxel_size is None else min(voxel_size[1], voxel_size[2])
            result = split_touching(
                work,
                seeds="distance",
                h=DISTANCE_H_PIXELS * pixel,
                voxel_size=voxel_size,
                ids=ids,
            )
        classes = result.classes_after(classes)
        pieces_made += sum(len(pieces) - 1 for pieces in result.pieces.values())
        too_large.extend(result.too_large)
    summary = {"split": request.split, "pieces_added": pieces_made, "left_whole": too_large}
    return classes, summary


def _instances_writer(
    folder: Path,
    shape: tuple[int, int, int],
    output_format: str,
    voxel_size: tuple[float, float, float] | None,
    version: str,
) -> SliceWriter:
    if output_format == "ome-zarr":
        return OmeZarrWriter(
            folder / INSTANCES_ZARR,
            shape,
            dtype="uint32",
            voxel_size=voxel_size,
            classes=[],  # a label image whose values are object ids, not classes
            version=version,
        )
    return LabelVolumeWriter(folder / INSTANCES_TIFF, shape, dtype="uint32", voxel_size=voxel_size)


def untrained_run(depth: int, trained: Sequence[int]) -> tuple[int, int] | None:
    """The longest run ``[z0, z1)`` of slices not in ``trained``; None when there is none."""
    skip = set(int(z) for z in trained)
    best: tuple[int, int] | None = None
    start = None
    for z in range(depth + 1):
        free = z < depth and z not in skip
        if free and start is None:
            start = z
        elif not free and start is not None:
            if best is None or z - start > best[1] - best[0]:
                best = (start, z)
            start = None
    return best


def _scores(
    work: np.ndarray,
    truth: BlockSource,
    class_of_id: np.ndarray,
    request: ObjectRequest,
    names: Mapping[int, str],
    run: tuple[int, int],
    scratch: Path,
) -> dict[str, Any]:
    """Object scores per class against the ground truth's objects on slices ``run``."""
    z0, z1 = run
    shape = (z1 - z0, work.shape[1], work.shape[2])
    results: dict[str, Any] = {}
    for class_id in request.class_ids:
        truth_ids = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint32, shape=shape)
        try:
            run_truth = BlockSource(
                lambda z, y, x: truth.read(slice(z.start + z0, z.stop + z0), y, x), shape, "truth"
            )
            label_instances(run_truth, truth_ids, class_ids=(class_id,))
            own = class_of_id == class_id

            def predicted(z: slice, y: slice, x: slice, own: np.ndarray = own) -> np.ndarray:
                ids = np.asarray(work[z.start + z0 : z.stop + z0, y, x])
                return np.where(own[ids], ids, 0).astype(np.uint32)

            scores = object_scores(BlockSource(predicted, shape, "instances"), truth_ids)
        finally:
            del truth_ids
            scratch.unlink(missing_ok=True)
        entry = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in scores.as_dict().items()
        }
        entry["slices"] = [z0, z1 - 1]
        results[names.get(class_id, str(class_id))] = entry
    return results


def write_objects(
    *,
    parts_dir: Path,
    folder: Path,
    work_dir: Path,
    request: ObjectRequest,
    raw: Any,
    voxel_size: tuple[float, float, float] | None,
    classes: Sequence[Mapping],
    output_format: str,
    version: str,
    truth: BlockSource | None = None,
    trained_slices: Sequence[int] = (),
    log: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """Write the instances and the object table into ``folder``; returns the card's entries.

    :param parts_dir: the job's complete parts folder (class ids, and probabilities for a
        probability split).
    :param folder: the segmentation's staging folder.
    :param work_dir: where the working instance volume may be memory-mapped (the job's folder).
    :param raw: the dataset's volume reader, for the mean intensity.
    :param truth: the ground truth's class ids, when the dataset has them.
    :param trained_slices: slices of this dataset the model trained on (never scored).
    """
    parts = PartsFolder(parts_dir)
    plan = parts.complete_plan()
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in classes}
    min_voxels = request.min_voxels
    if request.min_nm3 and voxel_size is not None:
        min_voxels = max(min_voxels, voxels_for_volume(request.min_nm3, voxel_size))
    work_dir.mkdir(parents=True, exist_ok=True)
    work_path = work_dir / "instances.work.npy"
    work = np.lib.format.open_memmap(work_path, mode="w+", dtype=np.uint32, shape=plan.shape)
    try:
        found = label_instances(
            _labels_source(parts, plan), work, class_ids=request.class_ids, min_voxels=min_voxels
        )
        log(
            f"objects: {found.objects} of classes {list(request.class_ids)} "
            f"({found.removed} below {min_voxels} voxels dropped)"
        )
        class_of_id = np.asarray(found.class_of_id, np.int64)
        split: dict[str, Any] = {"split": "none"}
        if request.split != "none":
            class_of_id, split = _split(
                work, request, parts, plan, class_of_id, found.first_id, found.count, voxel_size
            )
            log(f"split ({request.split}): {split['pieces_added']} pieces added")
        work.flush()
        table = measure_objects(work, class_of_id=class_of_id, intensity=raw, voxel_size=voxel_size)
        write_object_table(table, folder / OBJECT_TABLE, class_names=names, replace=True)
        with _instances_writer(folder, plan.shape, output_format, voxel_size, version) as writer:
            for z0, z1 in z_ranges(plan.shape[0], DEFAULT_BLOCK_PLANES):
                writer.write_block(z0, np.asarray(work[z0:z1]))
        entries: dict[str, Any] = {
            "instances": writer.path.name,
            "objects": OBJECT_TABLE,
            "object_settings": {
                "classes": [names.get(c, str(c)) for c in request.class_ids],
                "min_voxels": min_voxels,
                "connectivity": "faces (6 neighbours)",
                **split,
            },
            "object_count": len(table),
        }
        if truth is not None:
            run = untrained_run(plan.shape[0], trained_slices)
            if run is None:
                entries["object_scores_note"] = (
                    "not scored: the model trained on every slice of this dataset"
                )
            else:
                entries["object_scores"] = _scores(
                    work, truth, class_of_id, request, names, run, work_dir / "truth.work.npy"
                )
        return entries
    finally:
        del work
        work_path.unlink(missing_ok=True)
