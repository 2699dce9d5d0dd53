"""Live fine-tuning across processes: the job trains in a ``biosegment worker`` fed by Redis,
the web server in this process previews, accepts, and sees the segmentation that follows.

Nothing but the data folder (and the Redis queue) joins the two processes: the snapshot, the
status, the step curve and the accept request all travel as files in the job's folder.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from biosegment.config import ServerConfig
from biosegment.daemon import live_runners
from job_fixtures import (
    DEMO_DATASET,
    TINY_MODEL,
    make_folder,
    start_biosegment,
    stop_process,
    wait_for,
)
from test_redis_workers import redis_url  # noqa: F401  (the fixture)
from webui_fixtures import Http, png_pixels, serve

pytestmark = [pytest.mark.redis, pytest.mark.slow]

API = "/api/v1"


def test_a_job_on_a_worker_is_previewed_and_accepted_by_the_web_server(tmp_path, redis_url):  # noqa: F811
    root, config = make_folder(tmp_path / "shared", queue_url=redis_url)
    config = dataclasses.replace(
        config, server=ServerConfig(host="127.0.0.1", port=0, max_request_mb=64)
    )
    worker = start_biosegment(root, "worker", log=tmp_path / "worker.log")
    try:
        assert wait_for(
            lambda: any(str(o.get("identity")).endswith(":worker") for o in live_runners(root)),
            timeout=60,
        ), worker.poll()
        with serve(config) as server:
            http = Http(server.url)
            http.post(f"{API}/datasets/{DEMO_DATASET}/annotations", json_body={"name": "s"})
            labels = np.full((512, 512), 255, np.uint8)
            labels[10:30, 50:450] = 1
            labels[200:230, 50:450] = 0
            http.put(
                f"{API}/datasets/{DEMO_DATASET}/annotations/s/slices/1",
                body=labels.tobytes(),
                headers={"Content-Type": "application/octet-stream"},
            )
            reply = http.post(
                f"{API}/jobs/train",
                json_body={
                    "dataset": DEMO_DATASET,
                    "annotation": "s",
                    "base_model": TINY_MODEL,
                    "epochs": 10000,
                    "name": "on-worker",
                },
            )
            assert reply.status == 202, reply.body
            job_id = reply.json()["id"]

            def live():
                document = http.get(f"{API}/jobs/{job_id}/live").json()
                return document if document["available"] else None

            status = wait_for(live, timeout=120, interval=0.2)
            assert status, http.get(f"{API}/jobs/{job_id}").json()
            # trained in the worker process, previewed here
            assert f":{worker.pid}:" in http.get(f"{API}/jobs/{job_id}").json()["worker"]
            tile = http.get(f"{API}/jobs/{job_id}/live/tiles/z/4/0/0/0.png")
            assert tile.status == 200 and png_pixels(tile.body).shape == (512, 512)
            assert wait_for(lambda: http.get(f"{API}/jobs/{job_id}/steps").json()["steps"], 30)

            accepted = http.post(f"{API}/jobs/{job_id}/accept", json_body={"name": "accepted"})
            assert accepted.status == 202
            row = wait_for(
                lambda: (
                    (r := http.get(f"{API}/jobs/{job_id}").json())["state"]
                    in ("succeeded", "failed")
                    and r
                ),
                timeout=120,
            )
            assert row and row["state"] == "succeeded", row
            assert row["result"]["model"] == "accepted"
            segment = row["result"]["segmentation_job"]
            done = wait_for(
                lambda: http.get(f"{API}/jobs/{segment}").json()["state"] == "succeeded", 120
            )
            assert done, http.get(f"{API}/jobs/{segment}").json()
    finally:
        code = stop_process(worker, timeout=60)
    assert code == 0, (tmp_path / "worker.log").read_text()[-2000:]
    assert (root / "models" / "accepted" / "model.pytorch").is_file()
