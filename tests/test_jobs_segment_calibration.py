"""Segment jobs calibrate their outputs and size their blocks with the catalog's voxel size.

The voxel size a person sets in ``setup.json`` (the Dataset setup panel writes it there) wins
over the one a file's header records: it is written into ``labels.tif`` (ImageJ spacing, unit
and resolution tags) and into ``labels.ome.zarr`` (the multiscale scale, in nanometres), and
it decides the zoom to a model's pixel size, whose cost the block plan includes.
"""

from __future__ import annotations

import json
import time

import pytest
import tifffile
import zarr

from biosegment.catalog import open_catalog, refresh
from biosegment.catalog.setup_edit import edit_setup, setup_for_edit
from biosegment.daemon.consumer import ConsumerHost
from biosegment.engine import ModelCard, UNet, save_model
from biosegment.tasks import JobService
from biosegment.volumes import open_volume, write_volume
from job_fixtures import DEMO_DATASET, TINY_MODEL, job_row, make_folder

HEADER_VOXEL_SIZE = (20.0, 8.0, 8.0)
SETUP_VOXEL_SIZE = (30.0, 6.0, 6.0)


def _run_job(root, config, model: str = TINY_MODEL, **options) -> tuple[dict, dict]:
    """The finished job's row and its segmentation.json."""
    host = ConsumerHost(config, role="worker")
    host.start()
    service = JobService(config)
    try:
        job = service.submit_segment(DEMO_DATASET, model, **options)
        deadline = time.monotonic() + 120
        while job_row(root, job["id"])["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, "job did not finish"
            time.sleep(0.05)
    finally:
        service.close()
        host.stop()
    row = job_row(root, job["id"])
    assert row["state"] == "succeeded", row
    name = options.get("name", model)
    card = root / "segmentations" / DEMO_DATASET / name / "segmentation.json"
    return row, json.loads(card.read_text(encoding="utf-8"))


def _set_voxel_size(root, voxel_size) -> None:
    """Change the dataset's voxel size the way the Dataset setup panel does, then rescan."""
    _, version = setup_for_edit(root)
    edit_setup(root, version=version, dataset=DEMO_DATASET, voxel_size=list(voxel_size))
    with open_catalog(root) as catalog:
        refresh(catalog, root)


@pytest.fixture
def calibrated(tmp_path):
    """The demo folder, its raw TIFF's header saying one voxel size and setup.json another."""
    root, config = make_folder(tmp_path)
    raw = root / "EM" / DEMO_DATASET / "raw" / f"{DEMO_DATASET}.tif"
    write_volume(raw, tifffile.imread(raw), voxel_size=HEADER_VOXEL_SIZE)
    _set_voxel_size(root, SETUP_VOXEL_SIZE)
    with open_volume(raw) as volume:
        assert volume.voxel_size == HEADER_VOXEL_SIZE
    with open_catalog(root) as catalog:
        assert catalog.dataset(DEMO_DATASET)["voxel_size"] == list(SETUP_VOXEL_SIZE)
    return root, config


def test_labels_tif_carries_the_voxel_size_of_setup_json(calibrated):
    root, config = calibrated
    _, card = _run_job(root, config)
    labels = root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif"
    with open_volume(labels) as reader:
        assert reader.voxel_size == pytest.approx(SETUP_VOXEL_SIZE)
    # What Fiji reads: ImageJ's spacing and unit, and the pixel size as pixels per unit.
    with tifffile.TiffFile(labels) as tif:
        assert tif.imagej_metadata["spacing"] == pytest.approx(30.0)
        assert tif.imagej_metadata["unit"] == "nm"
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert denominator / numerator == pytest.approx(6.0)
        numerator, denominator = tif.pages[0].tags["YResolution"].value
        assert denominator / numerator == pytest.approx(6.0)
    assert card["voxel_size"] == list(SETUP_VOXEL_SIZE)


def test_ome_zarr_labels_carry_the_voxel_size_of_setup_json(calibrated):
    root, config = calibrated
    _run_job(root, config, output_format="ome-zarr", name="as-zarr")
    store = root / "segmentations" / DEMO_DATASET / "as-zarr" / "labels.ome.zarr"
    multiscale = zarr.open_group(str(store), mode="r").attrs["ome"]["multiscales"][0]
    assert [axis["unit"] for axis in multiscale["axes"]] == ["nanometer"] * 3
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    assert scales[0] == pytest.approx(list(SETUP_VOXEL_SIZE))
    with open_volume(store) as reader:
        assert reader.voxel_size == pytest.approx(SETUP_VOXEL_SIZE)


def test_a_voxel_size_that_zooms_the_slices_up_makes_more_blocks(tmp_path):
    root, config = make_folder(tmp_path)
    # A model trained on 2 nm pixels; the demo's 4 nm pixels are zoomed twice before it.
    model = UNet(feature_maps=4, levels=2, num_classes=2)
    card = ModelCard(name="fine", pixel_size={"in_plane_nm": [2.0, 2.0]})
    save_model(model, card, root / "models" / "fine")
    _set_voxel_size(root, (50, 4, 4))
    row, result = _run_job(root, config, model="fine")
    # 16 slices a block before the zoom; each zoomed slice is 4 times the work and memory.
    assert result["blocks"] == [[0, 4], [4, 5]]
    assert result["settings"]["zoom"] == pytest.approx(2.0)
    labels = root / "segmentations" / DEMO_DATASET / "fine" / "labels.tif"
    with open_volume(labels) as reader:
        assert reader.shape == (5, 512, 512)
        assert reader.voxel_size == pytest.approx((50.0, 4.0, 4.0))
