"""A segmentation with objects in a real data folder, written as the segment job writes them.

Beside ``labels.tif``: ``instances.tif`` (uint32 ids, or ``instances.ome.zarr``), ``objects.csv``
(one row per object, measured here with numpy from the instance volume itself) and a
``segmentation.json`` naming both and holding object scores. The objects are boxes of known
size on known slices, so every answer of the API can be checked against them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import tifffile
import zarr
from scipy import ndimage

from biosegment.catalog import open_catalog, refresh
from biosegment.engine.instances import label_instances
from biosegment.engine.object_table import measure_objects, write_object_table
from biosegment.volumes.writer import write_volume

__all__ = [
    "BOXES",
    "VOXEL_NM",
    "OBJECT_SCORES",
    "SPLIT_SCORES",
    "write_objects_segmentation",
    "write_engine_segmentation",
    "object_rows",
]

VOXEL_NM = [50.0, 4.0, 4.0]
#: id -> (class, z0, z1, y0, y1, x0, x1): boxes, end exclusive, none touching another.
BOXES = {
    1: (1, 0, 3, 10, 20, 30, 45),
    2: (1, 1, 2, 100, 140, 100, 110),
    3: (2, 2, 5, 200, 260, 300, 380),
    4: (1, 3, 5, 400, 404, 50, 52),
    5: (2, 0, 1, 300, 302, 450, 451),
    6: (1, 4, 5, 60, 90, 200, 290),
}
#: Object scores as a segment job writes them: per class, on the slices it did not train on.
OBJECT_SCORES = {
    "membrane": {
        "predicted_objects": 4,
        "true_objects": 5,
        "matched": 3,
        "object_precision": 0.75,
        "object_recall": 0.6,
        "object_f1": 0.6667,
        "ap75": 0.5312,
        "slices": [3, 4],
    }
}
#: A variant's scores in one flat set (the watershed split's, say).
SPLIT_SCORES = {
    "f1_50": 0.8125,
    "precision_50": 0.75,
    "recall_50": 0.8864,
    "ap_75": 0.4,
    "objects": 6,
    "truth_objects": 7,
}
_CLASS_NAMES = {1: "membrane", 2: "vesicle"}


def _volumes(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    instances = np.zeros(shape, np.uint32)
    labels = np.zeros(shape, np.uint8)
    for object_id, (cls, z0, z1, y0, y1, x0, x1) in BOXES.items():
        instances[z0:z1, y0:y1, x0:x1] = object_id
        labels[z0:z1, y0:y1, x0:x1] = cls
    return labels, instances


def object_rows(instances: np.ndarray, *, voxel_known: bool = True) -> list[dict]:
    """The table's rows, measured from ``instances`` (sizes, centroids and boxes exactly)."""
    rows = []
    voxel_nm3 = float(np.prod(VOXEL_NM))
    for object_id, (cls, *_) in BOXES.items():
        where = np.argwhere(instances == object_id)
        voxels = len(where)
        low, high = where.min(axis=0), where.max(axis=0) + 1
        centroid = where.mean(axis=0)
        rows.append(
            {
                "id": object_id,
                "class": cls,
                "class_name": _CLASS_NAMES[cls],
                "voxels": voxels,
                "volume_nm3": voxels * voxel_nm3 if voxel_known else "",
                "surface_nm2": 6.5 * voxels,
                **{f"centroid_{a}": float(centroid[i]) for i, a in enumerate("zyx")},
                **{f"bbox_{a}0": int(low[i]) for i, a in enumerate("zyx")},
                **{f"bbox_{a}1": int(high[i]) for i, a in enumerate("zyx")},
                "mean_intensity": 100.0 + object_id,
                "sphericity": round(1.0 / object_id, 4),
                "major_axis_length": float(max(high - low)),
                "minor_axis_length": float(min(high - low)),
            }
        )
    return rows


def _write_zarr_instances(path: Path, instances: np.ndarray) -> None:
    """An OME-Zarr (NGFF 0.4) label image of uint32 ids, one chunk per 64 x 64 of a slice."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=instances, chunks=(1, 64, 64))
    axes = [{"name": axis, "type": "space", "unit": "nanometer"} for axis in "zyx"]
    level = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": VOXEL_NM}]}
    group.attrs["multiscales"] = [
        {"version": "0.4", "name": "instances", "axes": axes, "datasets": [level]}
    ]
    group.attrs["image-label"] = {"version": "0.4"}


def _write_table(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_objects_segmentation(
    root: Path,
    dataset: str,
    name: str,
    *,
    zarr: bool = False,
    compressed: bool = False,
    voxel_known: bool = True,
    card_extra: dict | None = None,
) -> np.ndarray:
    """Write segmentation ``name`` of ``dataset`` with objects; returns the instance volume."""
    with open_catalog(root) as catalog:
        shape = tuple(catalog.dataset(dataset)["shape"])
    labels, instances = _volumes(shape)
    folder = root / "segmentations" / dataset / name
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(folder / "labels.tif", labels, voxel_size=VOXEL_NM)
    if zarr:
        _write_zarr_instances(folder / "instances.ome.zarr", instances)
        instance_file = "instances.ome.zarr"
    else:
        # uncompressed pages are mapped into memory; compressed ones are decoded a page at a time
        tifffile.imwrite(
            folder / "instances.tif",
            instances,
            photometric="minisblack",
            compression="zlib" if compressed else None,
        )
        instance_file = "instances.tif"
    _write_table(folder / "objects.csv", object_rows(instances, voxel_known=voxel_known))
    card = {
        "model": "tiny-membrane",
        "instances": instance_file,
        "objects": "objects.csv",
        "object_scores": OBJECT_SCORES,
        "object_scores_split": SPLIT_SCORES,
        **(card_extra or {}),
    }
    (folder / "segmentation.json").write_text(json.dumps(card), encoding="utf-8")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return instances


def write_engine_segmentation(root: Path, dataset: str, name: str) -> tuple[np.ndarray, int]:
    """Segmentation ``name`` with objects made by the engine itself: random blobs of class 1
    labelled by :func:`label_instances`, measured by :func:`measure_objects` and written by
    :func:`write_object_table`. Returns the instance volume and scipy's count of objects."""
    with open_catalog(root) as catalog:
        shape = tuple(catalog.dataset(dataset)["shape"])
    rng = np.random.default_rng(3)
    noise = ndimage.gaussian_filter(rng.random(shape), sigma=(0.6, 6, 6))
    classes = (noise > np.quantile(noise, 0.85)).astype(np.uint8)
    instances = np.zeros(shape, np.uint32)
    found = label_instances(classes, instances, class_ids=(1,))
    table = measure_objects(instances, class_of_id=found.class_of_id, voxel_size=VOXEL_NM)
    folder = root / "segmentations" / dataset / name
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(folder / "labels.tif", classes, voxel_size=tuple(VOXEL_NM))
    tifffile.imwrite(folder / "instances.tif", instances, photometric="minisblack")
    write_object_table(table, folder / "objects.csv")
    card = {"instances": "instances.tif", "objects": "objects.csv"}
    (folder / "segmentation.json").write_text(json.dumps(card), encoding="utf-8")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return instances, int(ndimage.label(classes)[1])
