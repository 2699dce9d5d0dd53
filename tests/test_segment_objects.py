"""Segment jobs count objects: instances equal to scipy's labelling, a table per object, object
scores against the ground truth on slices the model did not train on, and the choice of classes
from the request or the project's setup.json."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage

from biosegment.catalog import open_catalog, refresh
from biosegment.errors import InputError
from biosegment.tasks import JobService
from job_fixtures import DEMO_DATASET, TINY_MODEL, make_folder
from test_jobs_ome_zarr_output import engine_labels, run_job


def output(root, name=TINY_MODEL):
    return root / "segmentations" / DEMO_DATASET / name


def read_table(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_instances_are_scipys_components_and_every_object_has_a_row(tmp_path):
    root, config = make_folder(tmp_path)
    row = run_job(root, config, block_z=2, objects="class 1")
    assert row["state"] == "succeeded", row
    folder = output(root)
    assert {"instances.tif", "objects.csv", "labels.tif"} <= {p.name for p in folder.iterdir()}
    labels = engine_labels(root)
    expected, count = ndimage.label(labels == 1)
    instances = tifffile.imread(folder / "instances.tif")
    assert instances.dtype == np.uint32 and count > 3
    np.testing.assert_array_equal(instances, expected)
    table = read_table(folder / "objects.csv")
    assert [int(r["id"]) for r in table] == list(range(1, count + 1))
    assert {r["class"] for r in table} == {"1"} and {r["class_name"] for r in table} == {"class 1"}
    sizes = np.bincount(expected.ravel())[1:]
    assert [int(r["voxels"]) for r in table] == sizes.tolist()
    # the demo's voxel size (50 x 4 x 4 nm) makes the volumes
    assert float(table[0]["volume_nm3"]) == pytest.approx(sizes[0] * 50 * 4 * 4)
    card = json.loads((folder / "segmentation.json").read_text())
    assert card["instances"] == "instances.tif" and card["objects"] == "objects.csv"
    assert card["object_count"] == count
    # the demo has ground truth and the tiny model never trained on it: every slice is scored
    scores = card["object_scores"]["class 1"]
    assert scores["slices"] == [0, 4]
    assert scores["predicted_objects"] == count and scores["true_objects"] >= 1
    assert 0.0 <= scores["object_f1"] <= 1.0


def test_small_objects_are_dropped_and_a_split_keeps_every_voxel(tmp_path):
    root, config = make_folder(tmp_path)
    row = run_job(root, config, objects="1", min_object_voxels=40, name="big")
    assert row["state"] == "succeeded", row
    labels = engine_labels(root)
    components, _ = ndimage.label(labels == 1)
    sizes = np.bincount(components.ravel())
    kept = np.flatnonzero(sizes >= 40)
    kept = kept[kept > 0]
    instances = tifffile.imread(output(root, "big") / "instances.tif")
    assert instances.max() == len(kept)
    np.testing.assert_array_equal(instances > 0, np.isin(components, kept))

    row = run_job(root, config, objects="1", split="distance", name="split")
    assert row["state"] == "succeeded", row
    split = tifffile.imread(output(root, "split") / "instances.tif")
    np.testing.assert_array_equal(split > 0, labels == 1)  # the same voxels, maybe more objects
    assert split.max() >= components.max()
    card = json.loads((output(root, "split") / "segmentation.json").read_text())
    assert card["object_settings"]["split"] == "distance"


def test_the_project_marks_its_object_classes_and_a_request_may_say_none(tmp_path):
    root, config = make_folder(tmp_path)
    setup = json.loads((root / "setup.json").read_text())
    for project in setup["projects"]:
        for entry in project.get("classes") or []:
            entry["objects"] = True
    (root / "setup.json").write_text(json.dumps(setup, indent=2))
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    row = run_job(root, config, output_format="ome-zarr", name="marked")
    assert row["state"] == "succeeded", row
    names = {p.name for p in output(root, "marked").iterdir()}
    assert {"instances.ome.zarr", "objects.csv"} <= names
    instances = zarr.open_group(str(output(root, "marked") / "instances.ome.zarr"), mode="r")
    assert instances["0"].dtype == np.uint32
    row = run_job(root, config, objects="none", name="plain")
    assert row["state"] == "succeeded", row
    assert {p.name for p in output(root, "plain").iterdir()} == {"labels.tif", "segmentation.json"}


def test_a_class_the_model_does_not_have_is_refused_at_once(tmp_path):
    root, config = make_folder(tmp_path)
    service = JobService(config)
    try:
        with pytest.raises(InputError, match="mitochondrion") as caught:
            service.submit_segment(DEMO_DATASET, TINY_MODEL, objects="mitochondrion")
        assert caught.value.where == "objects"
        with pytest.raises(InputError) as caught:
            service.submit_segment(DEMO_DATASET, TINY_MODEL, split="voronoi")
        assert caught.value.where == "split"
    finally:
        service.close()
