"""A runner in immediate mode (``--wait`` without a daemon) runs a job's blocks itself.

The segment handler always hands its blocks to ``ctx.enqueue_block``; the runner decides where
they go. These tests run a real :class:`JobRunner` on a real data folder and SQLite queue: an
immediate runner leaves nothing on the queue when the job succeeds, and when it is stopped
halfway it puts the whole job (not single blocks) back on the queue for the next daemon.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import tifffile

from biosegment.engine.inference import finished_blocks
from biosegment.tasks import JobRunner, JobService
from biosegment.tasks.queue import pending_job_messages
from biosegment.tasks.workspace import JobWorkspace
from job_fixtures import DEMO_DATASET, TINY_MODEL, job_row, make_folder, wait_for


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path)


@pytest.fixture
def service(folder):
    svc = JobService(folder[1])
    yield svc
    svc.close()


def test_an_immediate_runner_runs_every_block_itself_and_queues_nothing(folder, service):
    root, config = folder
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, enqueue=False, block_z=2)
    runner = JobRunner(config, role="cli", huey=service.huey, immediate=True)
    try:
        row = runner.run_job(job["id"])
    finally:
        runner.close()
    assert row["state"] == "succeeded", row["message"]
    assert row["worker"] == runner.identity
    assert pending_job_messages(service.huey) == []
    log = service.job_log(job["id"])
    for index in range(3):  # each block ran as its own task, on this runner
        assert re.search(
            rf"block {index}: attempt \d+ on {re.escape(runner.identity)}$", log, re.MULTILINE
        ), log
    labels = tifffile.imread(root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif")
    assert labels.shape[0] == 5 and labels.dtype == np.uint8


def test_a_stopped_immediate_runner_puts_the_whole_job_back_on_the_queue(folder, service):
    root, config = folder
    job = service.submit_segment(DEMO_DATASET, TINY_MODEL, enqueue=False, block_z=1)
    runner = JobRunner(config, role="cli", huey=service.huey, immediate=True)
    parts = JobWorkspace.of(config, job["id"]).parts_dir
    blocks = [(z, z + 1) for z in range(5)]

    def stop_after_the_first_block() -> None:
        wait_for(lambda: finished_blocks(parts, blocks), timeout=120, interval=0.01)
        runner.stop_event.set()

    stopper = threading.Thread(target=stop_after_the_first_block, daemon=True)
    stopper.start()
    try:
        row = runner.run_job(job["id"])
    finally:
        stopper.join(timeout=130)
        runner.close()
    assert row["state"] == "queued" and "interrupted" in row["message"], row
    done = finished_blocks(parts, blocks)
    assert 1 <= len(done) < len(blocks), "the runner should stop between the first and last block"
    # The job, not its blocks, goes back: the next runner plans it again from the kept parts.
    assert pending_job_messages(service.huey) == [("run_job", (job["id"],))]
    assert job_row(root, job["id"])["state"] == "queued"
