"""A large slice's live tiles, asked all at once, leave the web server threads for other pages.

Over real HTTP against the real app: a train job on a 6144 x 6144 dataset is claimed as a runner
would, and its snapshot is written with the engine's own ``save_model``, so the server predicts
a slice that takes seconds. A viewer asks for a dozen of that slice's tiles at once. Before,
every request waited for the prediction (up to ``[limits] read_seconds``), the server's eight
request threads were all taken and the dataset list queued behind them. Now at most
:data:`~biosegment.webui.live_preview.WAITING_REQUESTS` requests wait; the others answer 503 at
once while the prediction goes on, and other pages answer within a second.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.engine import load_model, save_model
from biosegment.tasks.service import JobService
from biosegment.tasks.workspace import JobWorkspace
from biosegment.webui.live_preview import WAITING_REQUESTS
from job_fixtures import TINY_MODEL, make_folder, wait_for
from webui_fixtures import Http, serve

API = "/api/v1"
BIG = "wide"
EDGE = 6144  # a slice whose prediction takes seconds on any CPU with the tiny model
TILES_ASKED = 12  # more than the server's 8 request threads


def _add_wide_dataset(root) -> None:
    """Two slices of noise with a ground truth, enough for a train job to be queued."""
    rng = np.random.default_rng(3)
    raw = root / "EM" / BIG / "raw"
    raw.mkdir(parents=True)
    image = rng.integers(0, 256, (2, EDGE, EDGE), dtype=np.uint8)
    tifffile.imwrite(raw / f"{BIG}.tif", image, photometric="minisblack")
    truth = root / "EM" / BIG / "labels"
    truth.mkdir(parents=True)
    tifffile.imwrite(truth / "labels.tif", (image > 127).astype(np.uint8))


@pytest.fixture
def wide_job(tmp_path):
    root, config = make_folder(
        tmp_path,
        demo=False,
        extra={"limits": {"read_seconds": 4}, "engine": {"device": "cpu", "threads": 1}},
    )
    _add_wide_dataset(root)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    jobs = JobService(config)
    job = jobs.submit_train(dataset=BIG, base_model=TINY_MODEL, name="previewed", crop_size=64)
    with open_catalog(root) as catalog:
        assert catalog.try_claim_job(job["id"], "test:worker")["state"] == "running"
    workspace = JobWorkspace.of(config, job["id"])
    model, card = load_model(root / "models" / TINY_MODEL)
    save_model(model, card, workspace.live_dir)  # the snapshot a running job saves
    try:
        with serve(config, jobs=jobs) as server:
            yield Http(server.url), server, job
    finally:
        jobs.close()


def test_tiles_waiting_for_a_slow_prediction_leave_threads_for_other_pages(wide_job):
    http, server, job = wide_job
    answers: list[tuple[int, float]] = []
    started = time.monotonic()

    def ask(col: int) -> None:
        reply = http.get(f"{API}/jobs/{job['id']}/live/tiles/z/1/0/{col // 6}/{col % 6}.png")
        answers.append((reply.status, time.monotonic() - started))

    askers = [threading.Thread(target=ask, args=(col,)) for col in range(TILES_ASKED)]
    for asker in askers:
        asker.start()
    time.sleep(0.5)  # every tile request has reached the server
    asked = time.monotonic()
    datasets = http.get(f"{API}/datasets")
    waited = time.monotonic() - asked
    live = server.app.extensions["biosegment"].live
    predicted_meanwhile = live.predictions_made
    for asker in askers:
        asker.join(60)
    assert datasets.status == 200, datasets.body
    assert predicted_meanwhile == 0, "the slice was predicted too fast for this test to tell"
    assert waited < 1.0, f"the dataset list waited {waited:.1f} s behind the live tiles"
    quick = [status for status, seconds in answers if seconds < 2.0]
    assert len(quick) >= TILES_ASKED - WAITING_REQUESTS, answers
    assert set(quick) == {503}, answers
    # the prediction the bounced requests asked for went on, and is served when ready
    tile = f"{API}/jobs/{job['id']}/live/tiles/z/1/0/0/0.png"
    assert wait_for(lambda: http.get(tile).status == 200, 120)
    assert live.predictions_made == 1
