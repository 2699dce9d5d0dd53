"""Segment jobs write OME-Zarr label images when the config or the job asks for them."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zarr

from biosegment.catalog import open_catalog
from biosegment.config import config_from_mapping
from biosegment.daemon.consumer import ConsumerHost
from biosegment.errors import InputError
from biosegment.tasks import JobService
from biosegment.volumes import open_volume
from job_fixtures import DEMO_DATASET, TINY_MODEL, job_row, make_folder


def run_job(root, config, **options) -> dict:
    host = ConsumerHost(config, role="worker")
    host.start()
    service = JobService(config)
    try:
        job = service.submit_segment(DEMO_DATASET, TINY_MODEL, **options)
        deadline = time.monotonic() + 120
        while job_row(root, job["id"])["state"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, "job did not finish"
            time.sleep(0.05)
        return job_row(root, job["id"])
    finally:
        service.close()
        host.stop()


def engine_labels(root) -> np.ndarray:
    from biosegment.engine import load_model
    from biosegment.engine.inference import segment_volume

    model, _ = load_model(root / "models" / TINY_MODEL)
    with open_volume(root / "EM" / DEMO_DATASET / "raw") as volume:
        return segment_volume(volume, model, device="cpu")


def test_the_config_makes_every_segmentation_an_ome_zarr(tmp_path):
    root, config = make_folder(tmp_path, extra={"engine": {"segmentation_format": "ome-zarr"}})
    assert config.engine.segmentation_format == "ome-zarr"
    row = run_job(root, config, block_z=2)
    assert row["state"] == "succeeded", row
    output = root / "segmentations" / DEMO_DATASET / TINY_MODEL
    assert sorted(p.name for p in output.iterdir()) == ["labels.ome.zarr", "segmentation.json"]
    group = zarr.open_group(str(output / "labels.ome.zarr"), mode="r")
    assert group.attrs["ome"]["image-label"]["properties"][0]["label-value"] == 0
    with open_volume(output / "labels.ome.zarr") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 5), engine_labels(root))
        assert len(reader.levels) == 1  # 512x512 slices fit one tile
    card = json.loads((output / "segmentation.json").read_text())
    assert card["labels"] == "labels.ome.zarr"
    with open_catalog(root) as catalog:
        location = catalog.segmentation(DEMO_DATASET, TINY_MODEL)["location"]
    assert location == f"segmentations/{DEMO_DATASET}/{TINY_MODEL}/labels.ome.zarr"


def test_a_job_may_choose_its_format_and_unknown_formats_are_refused(tmp_path):
    root, config = make_folder(tmp_path)
    assert config.engine.segmentation_format == "tiff"
    row = run_job(root, config, output_format="ome-zarr", name="as-zarr")
    assert row["state"] == "succeeded", row
    assert (root / "segmentations" / DEMO_DATASET / "as-zarr" / "labels.ome.zarr").is_dir()
    service = JobService(config)
    try:
        with pytest.raises(InputError) as caught:
            service.submit_segment(DEMO_DATASET, TINY_MODEL, output_format="nifti")
        assert caught.value.where == "output_format"
    finally:
        service.close()
    with pytest.raises(InputError) as caught:
        config_from_mapping({"engine": {"segmentation_format": "png"}})
    assert caught.value.where == "engine.segmentation_format"
