"""Every file a segmentation writes opens as it is in the readers other tools use.

ome-zarr-py is the reader napari-ome-zarr (and so napari) opens OME-Zarr with; tifffile is the
TIFF reader of the Python imaging stack and reads the ImageJ calibration Fiji writes and reads.
Each output comes from a real segment job and must show the same values, the classes or
channels by name, and the dataset's voxel size in nanometres.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from scipy import ndimage

from job_fixtures import DEMO_DATASET, TINY_MODEL, make_folder
from test_jobs_ome_zarr_output import engine_labels, run_job
from test_segment_probabilities import engine_probabilities


def ome_zarr_node(path):
    """The first node ome-zarr-py finds at ``path`` (the image itself)."""
    nodes = list(Reader(parse_url(str(path)))())
    assert nodes, f"ome-zarr-py found no image in {path}"
    return nodes[0]


def test_labels_tif_opens_in_tifffile_with_its_calibration(tmp_path):
    root, config = make_folder(tmp_path)
    assert run_job(root, config)["state"] == "succeeded"
    path = root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif"
    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        assert tif.is_imagej
        spacing = tif.imagej_metadata.get("spacing")
        unit = tif.imagej_metadata.get("unit")
        numerator, denominator = tif.pages[0].tags["XResolution"].value
    np.testing.assert_array_equal(data, engine_labels(root))
    # the demo's setup.json gives 50 x 4 x 4 nm: the slice spacing is in the ImageJ metadata
    # and the pixel size as the resolution tags (pixels per unit)
    assert unit in ("nm", "nanometer") and spacing == pytest.approx(50.0)
    assert denominator / numerator == pytest.approx(4.0)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_labels_and_probabilities_open_in_ome_zarr_py(tmp_path, version):
    root, config = make_folder(tmp_path, extra={"engine": {"ome_zarr_version": version}})
    row = run_job(
        root, config, output_format="ome-zarr", probabilities="ome-zarr", objects="class 1"
    )
    assert row["state"] == "succeeded", row
    folder = root / "segmentations" / DEMO_DATASET / TINY_MODEL
    labels, probabilities = engine_probabilities(root)

    node = ome_zarr_node(folder / "labels.ome.zarr")
    assert any(isinstance(spec, Label) for spec in node.specs)
    np.testing.assert_array_equal(np.asarray(node.data[0]), labels)
    # ome-zarr-py gives each label value's properties, as napari shows them
    names = {value: entry["class"] for value, entry in node.metadata["properties"].items()}
    assert names[0] == "background" and len(names) == probabilities.shape[0]
    assert [axis["name"] for axis in node.metadata["axes"]] == ["z", "y", "x"]

    node = ome_zarr_node(folder / "probabilities.ome.zarr")
    assert any(isinstance(spec, Multiscales) for spec in node.specs)
    np.testing.assert_array_equal(np.asarray(node.data[0]), probabilities)
    assert [axis["name"] for axis in node.metadata["axes"]] == ["c", "z", "y", "x"]
    assert node.metadata["axes"][0]["type"] == "channel"
    assert node.metadata["channel_names"] == list(names.values())

    # the object ids: a uint32 label image beside the classes, as napari opens it
    node = ome_zarr_node(folder / "instances.ome.zarr")
    assert any(isinstance(spec, Label) for spec in node.specs)
    instances = np.asarray(node.data[0])
    assert instances.dtype == np.uint32
    expected, count = ndimage.label(labels == 1)
    np.testing.assert_array_equal(instances, expected)
    # and the table, as any CSV reader takes it
    with open(folder / "objects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == count and int(rows[-1]["id"]) == count


def test_instances_tif_opens_in_tifffile_as_uint32(tmp_path):
    root, config = make_folder(tmp_path)
    assert run_job(root, config, objects="class 1")["state"] == "succeeded"
    path = root / "segmentations" / DEMO_DATASET / TINY_MODEL / "instances.tif"
    with tifffile.TiffFile(path) as tif:
        data = tif.asarray()
        spacing = tif.imagej_metadata.get("spacing") if tif.is_imagej else None
    assert data.dtype == np.uint32
    np.testing.assert_array_equal(data, ndimage.label(engine_labels(root) == 1)[0])
    assert spacing == pytest.approx(50.0)
