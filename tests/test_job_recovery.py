"""Jobs survive the daemon: ``kill -9`` and SIGTERM of a real ``biosegment run`` process.

The daemon is a subprocess of this interpreter; jobs are submitted through a JobService here,
as the web UI or CLI would. After the daemon dies or stops, a new daemon must finish each job
from where it stopped: training from its last epoch's checkpoint, segmentation from its
finished blocks, with a valid output and a catalog where nothing is left running.
"""

from __future__ import annotations

import os
import re
import signal

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog
from biosegment.daemon import daemon_running
from biosegment.engine import load_model
from biosegment.tasks import JobService
from job_fixtures import (
    DEMO_DATASET,
    QUICK_TRAIN,
    TINY_MODEL,
    TRAIN_DATASET,
    job_row,
    make_folder,
    start_biosegment,
    stop_process,
    wait_for,
)

BLOCK_DONE = re.compile(r"block (\d+)/\d+ \(z [\d-]+\) done$")
TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def daemons(tmp_path):
    root, config = make_folder(tmp_path, training=True)
    started = []

    def start():
        process = start_biosegment(root, "run", "--headless", log=tmp_path / "daemon.log")
        started.append(process)
        assert wait_for(lambda: daemon_running(root) or process.poll() is not None, 60)
        assert process.poll() is None, (tmp_path / "daemon.log").read_text()
        return process

    service = JobService(config)
    yield root, service, start
    service.close()
    for process in started:
        stop_process(process, timeout=30)


def wait_finished(root, job_id, timeout=180) -> dict:
    row = wait_for(
        lambda: (lambda r: r if r["state"] in TERMINAL else None)(job_row(root, job_id)),
        timeout=timeout,
        interval=0.1,
    )
    return row or job_row(root, job_id)


def assert_nothing_left_running(root):
    catalog = open_catalog(root)
    try:
        assert catalog.jobs_in_state("running") == []
        assert catalog.jobs_in_state("queued") == []
    finally:
        catalog.close()


def test_kill_9_during_training_then_restart_finishes_from_the_checkpoint(daemons):
    root, service, start = daemons
    first = start()
    job = service.submit_train(
        dataset=TRAIN_DATASET, epochs=12, steps_per_epoch=3, name="survivor", **QUICK_TRAIN
    )
    assert wait_for(
        lambda: len(job_row(root, job["id"])["metrics"]) >= 2, timeout=120, interval=0.02
    ), service.job_log(job["id"])
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    killed = job_row(root, job["id"])
    assert killed["state"] == "running", "the row should still claim a dead runner"
    assert not daemon_running(root)
    epochs_before = len(killed["metrics"])

    start()
    final = wait_finished(root, job["id"])
    log = service.job_log(job["id"])
    assert final["state"] == "succeeded", (final["message"], log)
    assert final["attempts"] == 2
    resumed = re.search(r"resuming from epoch (\d+)", log)
    assert resumed and int(resumed.group(1)) >= min(epochs_before, 2) - 1, log
    assert [m["epoch"] for m in final["metrics"]] == list(range(1, 13))
    model, card = load_model(root / "models" / "survivor")
    assert card.training["steps"] == 36 and card.training["epochs_completed"] == 12
    assert model.config["levels"] == 2
    catalog = open_catalog(root)
    try:
        assert catalog.model("survivor")["state"] == "ok"
    finally:
        catalog.close()
    assert_nothing_left_running(root)
    assert not (root / "models" / "survivor" / "training_state.pt").exists()


def test_sigterm_requeues_a_running_training_and_the_next_start_resumes_it(daemons):
    root, service, start = daemons
    first = start()
    job = service.submit_train(
        dataset=TRAIN_DATASET, epochs=300, steps_per_epoch=2, name="stopped", **QUICK_TRAIN
    )
    assert wait_for(
        lambda: len(job_row(root, job["id"])["metrics"]) >= 2, timeout=120, interval=0.02
    )
    assert stop_process(first, sig=signal.SIGTERM, timeout=60) == 0
    stopped = job_row(root, job["id"])
    assert stopped["state"] == "queued", stopped
    assert "interrupted by shutdown" in stopped["message"]
    assert not daemon_running(root)
    # The job folder keeps what is needed to resume.
    assert (root / ".biosegment" / "jobs" / job["id"] / "model" / "training_state.pt").is_file()

    start()
    assert wait_for(lambda: "resuming from epoch" in service.job_log(job["id"]), timeout=60)
    service.cancel(job["id"])  # 300 epochs are not needed to prove the point
    final = wait_finished(root, job["id"], timeout=60)
    assert final["state"] == "cancelled"
    assert final["attempts"] == 2
    assert_nothing_left_running(root)


def test_kill_9_during_segmentation_resumes_from_the_finished_blocks(daemons):
    root, service, start = daemons
    first = start()
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z=1, window=256)
    assert wait_for(
        lambda: any(BLOCK_DONE.search(line) for line in service.job_log(job["id"]).splitlines()),
        timeout=120,
        interval=0.02,
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert job_row(root, job["id"])["state"] == "running", "the kill came too late to test"
    before = {
        int(m.group(1))
        for line in service.job_log(job["id"]).splitlines()
        if (m := BLOCK_DONE.search(line))
    }
    log_before = service.job_log(job["id"])

    start()
    final = wait_finished(root, job["id"])
    assert final["state"] == "succeeded", (final["message"], service.job_log(job["id"]))
    after_lines = service.job_log(job["id"])[len(log_before) :].splitlines()
    after = [int(m.group(1)) for line in after_lines if (m := BLOCK_DONE.search(line))]
    assert before and not (before & set(after)), f"blocks redone: {before & set(after)}"
    assert before | set(after) == {1, 2, 3, 4, 5}

    from biosegment.engine.inference import segment_volume
    from biosegment.volumes import open_volume

    model, _ = load_model(root / "models" / TINY_MODEL)
    with open_volume(root / "EM" / DEMO_DATASET / "raw" / f"{DEMO_DATASET}.tif") as volume:
        expected = segment_volume(volume, model, device="cpu", window=(256, 256))
    labels = tifffile.imread(root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif")
    assert labels.shape == expected.shape and labels.dtype == np.uint8
    # The daemon runs torch with one thread, this test with two: summation order differs, so
    # a voxel whose two class scores tie to the last bit may flip. Anything more is a bug.
    assert np.mean(labels != expected) < 1e-3
    assert_nothing_left_running(root)


def test_a_job_whose_daemon_dies_under_it_twice_is_failed_not_run_a_third_time(daemons):
    root, service, start = daemons
    job = service.submit_train(
        dataset=TRAIN_DATASET, epochs=3000, steps_per_epoch=2, name="doomed", **QUICK_TRAIN
    )
    for attempt in (1, 2):
        daemon = start()
        assert wait_for(
            lambda attempt=attempt: (
                lambda r: r["state"] == "running" and r["attempts"] == attempt
            )(job_row(root, job["id"])),
            timeout=120,
            interval=0.02,
        ), job_row(root, job["id"])
        os.kill(daemon.pid, signal.SIGKILL)  # as the kernel does to a process out of memory
        daemon.wait(timeout=10)

    start()
    final = wait_finished(root, job["id"], timeout=60)
    assert final["state"] == "failed", final
    assert final["attempts"] == 2 and final["crashes"] == 2
    assert "stopped 2 times while running it" in final["message"]
    assert "not retried" in final["message"]
    assert "not retried" in service.job_log(job["id"])
    # the name it held is free again, for a retry with other settings
    assert final["model_name"] is None
    again = service.retry(job["id"])
    assert again["model_name"] == "doomed"
    service.cancel(again["id"])
    assert_nothing_left_running(root)
