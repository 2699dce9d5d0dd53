"""Segmentation jobs through the real queue: a Huey consumer (SQLite) runs them in threads.

The job is submitted through a JobService with its own queue connection, as the web UI would,
and watched through a separate catalog connection. The labels are compared with what the engine
computes directly, so a job that "succeeds" with wrong output fails here.
"""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog
from biosegment.daemon.consumer import ConsumerHost
from biosegment.errors import InputError, NotFoundError
from biosegment.tasks import JobService
from job_fixtures import DEMO_DATASET, TINY_MODEL, job_row, make_folder, wait_for

TERMINAL = ("succeeded", "failed", "cancelled")
BLOCK_DONE = re.compile(r"block \d+/\d+ \(z [\d-]+\) done$")


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path)


@pytest.fixture
def consumer(folder):
    root, config = folder
    hosts = []

    def start(**kwargs) -> ConsumerHost:
        host = ConsumerHost(config, role="worker", **kwargs)
        host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture
def service(folder):
    svc = JobService(folder[1])
    yield svc
    svc.close()


def sample_until_done(root, job_id: str, timeout: float = 120) -> list[dict]:
    """Rows of the job read every 20 ms from a connection of our own, until it ends."""
    catalog = open_catalog(root)
    samples = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = catalog.job(job_id)
            samples.append(row)
            if row["state"] in TERMINAL:
                break
            time.sleep(0.02)
    finally:
        catalog.close()
    return samples


def engine_labels(root, **settings) -> np.ndarray:
    from biosegment.engine import load_model
    from biosegment.engine.inference import segment_volume
    from biosegment.volumes import open_volume

    model, _ = load_model(root / "models" / TINY_MODEL)
    with open_volume(root / "EM" / DEMO_DATASET / "raw" / f"{DEMO_DATASET}.tif") as volume:
        return segment_volume(volume, model, device="cpu", **settings)


def test_demo_segmentation_succeeds_with_progress_rising_to_one(folder, consumer, service):
    root, _ = folder
    consumer()
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z=2)
    assert job["state"] == "queued" and job["params"]["name"] == TINY_MODEL
    samples = sample_until_done(root, job["id"])
    final = samples[-1]
    assert final["state"] == "succeeded", final
    progress = [s["progress"] for s in samples]
    assert progress == sorted(progress), "progress went backwards"
    assert final["progress"] == 1.0
    assert any(0.0 < p < 1.0 for p in progress), "no intermediate progress was ever written"
    assert any(s["eta"] is not None for s in samples if s["state"] == "running")
    assert final["started_at"] and final["finished_at"] and final["worker"]

    output = root / "segmentations" / DEMO_DATASET / TINY_MODEL
    labels = tifffile.imread(output / "labels.tif")
    assert labels.shape == (5, 512, 512) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, engine_labels(root))
    card = json.loads((output / "segmentation.json").read_text())
    assert card["model"] == TINY_MODEL and card["job"] == job["id"]
    assert card["blocks"] == [[0, 2], [2, 4], [4, 5]]
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")], (
        "a staging folder was left behind"
    )

    catalog = open_catalog(root)
    try:
        row = catalog.segmentation(DEMO_DATASET, TINY_MODEL)
    finally:
        catalog.close()
    assert row["state"] == "ok" and row["model"] == TINY_MODEL
    assert row["location"] == f"segmentations/{DEMO_DATASET}/{TINY_MODEL}/labels.tif"
    log = service.job_log(job["id"])
    assert "block 3/3 (z 4-4) done" in log and "succeeded" in log


def test_a_second_segmentation_gets_its_own_name(folder, consumer, service):
    root, _ = folder
    consumer()
    first = service.submit_segment(DEMO_DATASET, TINY_MODEL)
    # asked again while the first is unfinished: the answer is the first job
    assert service.submit_segment(DEMO_DATASET, TINY_MODEL)["id"] == first["id"]
    assert sample_until_done(root, first["id"])[-1]["state"] == "succeeded"
    second = service.submit_segment(DEMO_DATASET, TINY_MODEL)
    assert first["params"]["name"] == TINY_MODEL
    assert second["params"]["name"] == f"{TINY_MODEL}-2"
    assert sample_until_done(root, second["id"])[-1]["state"] == "succeeded"
    assert (root / "segmentations" / DEMO_DATASET / f"{TINY_MODEL}-2" / "labels.tif").is_file()
    with pytest.raises(InputError) as excinfo:
        service.submit_segment(DEMO_DATASET, TINY_MODEL, name=TINY_MODEL)
    assert excinfo.value.where == "name"


def test_the_row_stores_the_settings_and_an_older_row_with_flat_options_still_runs(
    folder, consumer, service
):
    root, _ = folder
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z=2, enqueue=False)
    assert job["params"]["settings"]["block_z"] == 2 and "block_z" not in job["params"]
    service.cancel(job["id"])
    # A job queued by an older BioSegment keeps its options beside the dataset and model.
    catalog = open_catalog(root)
    try:
        params = {"dataset": DEMO_DATASET, "model": TINY_MODEL, "name": "older", "block_z": 4}
        older = catalog.create_job("segment", {**params, "output_format": "ome-zarr"})
    finally:
        catalog.close()
    consumer()
    service.enqueue(older["id"])
    assert sample_until_done(root, older["id"])[-1]["state"] == "succeeded"
    output = root / "segmentations" / DEMO_DATASET / "older"
    assert (output / "labels.ome.zarr").is_dir()
    assert json.loads((output / "segmentation.json").read_text())["blocks"] == [[0, 4], [4, 5]]


def test_bad_requests_name_what_is_wrong(service):
    with pytest.raises(NotFoundError, match="nope"):
        service.submit_segment("nope", TINY_MODEL)
    with pytest.raises(NotFoundError, match="missing-model"):
        service.submit_segment(DEMO_DATASET, "missing-model")
    with pytest.raises(InputError) as excinfo:
        service.submit_segment(DEMO_DATASET, TINY_MODEL, tile_size=3)
    assert excinfo.value.where == "tile_size"
    with pytest.raises(InputError) as excinfo:
        service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z="two")
    assert excinfo.value.where == "block_z"
    with pytest.raises(InputError) as excinfo:
        service.submit_segment(DEMO_DATASET, TINY_MODEL, name="../escape")
    assert excinfo.value.where == "name"
    assert service.jobs() == [], "a refused request must not leave a job behind"


def test_cancel_of_a_queued_job_is_immediate_and_final(folder, consumer, service):
    root, _ = folder
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL)
    cancelled = service.cancel(job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["finished_at"]
    consumer()
    # The queue message is still delivered; the runner must see the cancel and skip the job.
    time.sleep(1.5)
    row = job_row(root, job["id"])
    assert row["state"] == "cancelled" and row["attempts"] == 0
    assert not (root / "segmentations" / DEMO_DATASET / TINY_MODEL).exists()
    with pytest.raises(InputError):
        service.retry(service.submit_segment(DEMO_DATASET, TINY_MODEL, enqueue=False)["id"])


def test_cancel_of_a_running_segmentation_stops_it_and_retry_finishes(folder, consumer, service):
    root, _ = folder
    consumer()
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z=1, batch_size=1, window=128)
    assert wait_for(lambda: job_row(root, job["id"])["progress"] > 0, timeout=60)
    service.cancel(job["id"])
    final = sample_until_done(root, job["id"], timeout=30)[-1]
    assert final["state"] == "cancelled", final
    assert final["progress"] < 1.0
    assert not (root / "segmentations" / DEMO_DATASET / TINY_MODEL).exists()

    again = service.retry(job["id"])
    assert again["id"] != job["id"] and again["params"]["retry_of"] == job["id"]
    assert sample_until_done(root, again["id"])[-1]["state"] == "succeeded"
    assert (root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif").is_file()


def test_shutdown_puts_the_interrupted_block_back_and_a_restart_finishes(folder, consumer, service):
    root, _ = folder
    host = consumer()
    # Several batches per block, so the stop often lands inside one.
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z=1, window=256)
    assert wait_for(lambda: "block 2/5" in service.job_log(job["id"]), timeout=60)
    stopper = threading.Thread(target=host.stop)
    stopper.start()
    stopper.join(timeout=60)
    assert not stopper.is_alive(), "the consumer did not stop"
    stopped = job_row(root, job["id"])
    assert stopped["state"] in ("running", "queued"), stopped
    done_before = sum(
        1 for line in service.job_log(job["id"]).splitlines() if BLOCK_DONE.search(line)
    )

    consumer()
    final = sample_until_done(root, job["id"])[-1]
    assert final["state"] == "succeeded", final
    log = service.job_log(job["id"])
    computed = [line for line in log.splitlines() if BLOCK_DONE.search(line)]
    # Each of the five blocks was finished exactly once across both consumers.
    assert len(computed) == 5, computed
    assert done_before >= 1
    if "interrupted by shutdown" in log:
        assert (
            re.search(r"block \d+ interrupted; re-queued", json.dumps(stopped["message"]))
            or stopped["state"] == "queued"
        )
    labels = tifffile.imread(root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif")
    np.testing.assert_array_equal(labels, engine_labels(root, window=(256, 256)))


def test_a_3d_model_segments_with_a_window_edge_given_as_one_number(folder, consumer, service):
    """`window` in a job is one edge for every axis the network sees, 2-D or 3-D."""
    import torch

    from biosegment.engine import UNet, save_model
    from biosegment.engine.model_card import ModelCard

    root, _ = folder
    torch.manual_seed(0)
    net = UNet(dims=3, feature_maps=2, levels=1, num_classes=2)
    save_model(net, ModelCard(name="tiny3d", architecture=net.config), root / "models" / "tiny3d")
    from biosegment.catalog import refresh

    catalog = open_catalog(root)
    try:
        refresh(catalog, root)
    finally:
        catalog.close()
    consumer()
    job = service.submit_segment(DEMO_DATASET, "tiny3d", window=32)
    final = sample_until_done(root, job["id"])[-1]
    assert final["state"] == "succeeded", final
    labels = tifffile.imread(root / "segmentations" / DEMO_DATASET / "tiny3d" / "labels.tif")
    assert labels.shape == (5, 512, 512)
