"""A live preview tile whose prediction outlasts the request is kept, not predicted again.

Over real HTTP against the real app: a train job is queued and claimed as a runner would, and
its snapshot is written with the engine's own ``save_model``, so the server predicts from real
weights. ``[limits] read_seconds`` is a millisecond, shorter than any prediction, so every first
request gives up; before, the prediction was stopped with it and the next request started over,
so the tile never came. Now the prediction runs on and the next request gets it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from biosegment.catalog import open_catalog
from biosegment.engine import load_model, save_model
from biosegment.tasks.service import JobService
from biosegment.tasks.workspace import JobWorkspace
from job_fixtures import TINY_MODEL, TRAIN_DATASET, make_folder, wait_for
from webui_fixtures import Http, png_pixels, serve

API = "/api/v1"


@pytest.fixture
def running_job(tmp_path):
    root, config = make_folder(
        tmp_path,
        demo=False,
        training=True,
        extra={"limits": {"read_seconds": 0.001}, "engine": {"device": "cpu", "threads": 1}},
    )
    jobs = JobService(config)
    job = jobs.submit_train(dataset=TRAIN_DATASET, base_model=TINY_MODEL, name="previewed")
    with open_catalog(root) as catalog:
        assert catalog.try_claim_job(job["id"], "test:worker")["state"] == "running"
    workspace = JobWorkspace.of(config, job["id"])
    model, card = load_model(root / "models" / TINY_MODEL)
    save_model(model, card, workspace.live_dir)  # the snapshot a running job saves
    try:
        with serve(config, jobs=jobs) as server:
            yield Http(server.url), server, job, workspace
    finally:
        jobs.close()


def test_a_prediction_past_the_deadline_is_kept_for_the_next_request(running_job):
    http, server, job, workspace = running_job
    tile = f"{API}/jobs/{job['id']}/live/tiles/z/1/0/0/0.png"
    first = http.get(tile)
    assert first.status == 503, first.body
    assert first.json()["field"] == "index" and "ask again" in first.json()["error"]
    served = wait_for(lambda: (reply := http.get(tile)).status == 200 and reply, 60)
    assert served, http.get(tile).body
    labels = png_pixels(served.body)
    assert labels.shape == (64, 64) and set(np.unique(labels)) <= {0, 1}
    live = server.app.extensions["biosegment"].live
    assert live.predictions_made == 1  # one prediction, kept, never started over
    again = http.get(tile, headers={"If-None-Match": served.headers["ETag"]})
    assert again.status == 304


def test_a_newer_snapshot_shows_the_earlier_prediction_until_its_own_is_ready(running_job):
    http, server, job, workspace = running_job
    tile = f"{API}/jobs/{job['id']}/live/tiles/z/2/0/0/0.png"
    assert wait_for(lambda: http.get(tile).status == 200, 60)
    earlier = http.get(tile)
    time.sleep(0.01)  # a new mtime: the snapshot's version changes
    model, card = load_model(workspace.live_dir)
    save_model(model, card, workspace.live_dir)
    # the new snapshot's prediction is not ready within a millisecond: the earlier one shows
    meanwhile = http.get(tile)
    assert meanwhile.status == 200 and meanwhile.headers["ETag"] == earlier.headers["ETag"]
    assert meanwhile.body == earlier.body
    # and once the new one is predicted, it is what the tile shows
    assert wait_for(lambda: http.get(tile).headers["ETag"] != earlier.headers["ETag"], 60)
