"""API: a fine-tune's live preview, per-step curve, strokes that join it, accept and discard.

A real daemon runs in this process (watcher, Huey consumer and web server); every request is
real HTTP. The base model is tiny (4 feature maps, 2 levels), so a training step and a preview
of a 512x512 slice take a fraction of a second on two cores.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from job_fixtures import wait_for
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    cpu_daemon,
    png_pixels,
)

pytestmark = pytest.mark.slow

API = "/api/v1"


@pytest.fixture
def site(tmp_path):
    with cpu_daemon(tmp_path) as running:
        yield Http(running.url), running.root


def _paint(http: Http, z: int, rows: slice, value: int, name: str = "scribbles") -> None:
    labels = np.full((512, 512), 255, np.uint8)
    labels[rows, 100:400] = value
    reply = http.put(
        f"{API}/datasets/{DEMO_DATASET}/annotations/{name}/slices/{z}",
        body=labels.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert reply.status in (200, 204), reply.body


def _start_training(http: Http, name: str) -> dict:
    created = http.post(
        f"{API}/datasets/{DEMO_DATASET}/annotations", json_body={"name": "scribbles"}
    )
    assert created.status in (200, 201) or created.json()["field"] == "name"  # made before
    _paint(http, 0, slice(10, 20), 1)
    _paint(http, 0, slice(200, 220), 0)
    reply = http.post(
        f"{API}/jobs/train",
        json_body={
            "dataset": DEMO_DATASET,
            "annotation": "scribbles",
            "base_model": "tiny-membrane",
            "epochs": 10000,
            "name": name,
        },
    )
    assert reply.status == 202, reply.body
    return reply.json()


def _live(http: Http, job_id: str) -> dict:
    reply = http.get(f"{API}/jobs/{job_id}/live")
    assert reply.status == 200, reply.body
    return reply.json()


def _job(http: Http, job_id: str) -> dict:
    return http.get(f"{API}/jobs/{job_id}").json()


def test_live_preview_steps_new_strokes_and_accept(site):
    http, root = site
    job = _start_training(http, "tuned")
    live = wait_for(lambda: _live(http, job["id"])["available"] and _live(http, job["id"]), 120)
    assert live, _job(http, job["id"])
    assert live["dataset"] == DEMO_DATASET and live["state"] == "running"
    assert live["step"] >= 1 and live["version"]

    tile = http.get(f"{API}/jobs/{job['id']}/live/tiles/z/3/0/0/0.png?v={live['version']}")
    assert tile.status == 200 and tile.headers["Content-Type"] == "image/png"
    pixels = png_pixels(tile.body)
    assert pixels.shape == (512, 512) and set(np.unique(pixels)) <= {0, 1}
    again = http.get(
        f"{API}/jobs/{job['id']}/live/tiles/z/3/0/0/0.png",
        headers={"If-None-Match": tile.headers["ETag"]},
    )
    assert again.status in (200, 304)  # 200 when a newer snapshot landed meanwhile
    coarse = http.get(f"{API}/jobs/{job['id']}/live/tiles/z/3/1/0/0.png")
    assert coarse.status == 404 and coarse.json()["field"] == "level"
    outside = http.get(f"{API}/jobs/{job['id']}/live/tiles/z/999/0/0/0.png")
    assert outside.status == 404 and outside.json()["field"] == "index"

    # a newer snapshot replaces the weights: the version moves on
    newer = wait_for(lambda: _live(http, job["id"])["version"] != live["version"], 60)
    assert newer

    # the per-step curve grows, and ?after= gives only the new part
    steps = wait_for(lambda: http.get(f"{API}/jobs/{job['id']}/steps").json()["steps"], 30)
    assert steps and steps[0]["step"] == 1 and isinstance(steps[0]["loss"], float)
    later = http.get(f"{API}/jobs/{job['id']}/steps?after={steps[-1]['step']}").json()["steps"]
    assert all(s["step"] > steps[-1]["step"] for s in later)

    # a stroke painted meanwhile joins the running job
    pixels_before = _live(http, job["id"])["training_pixels"]
    _paint(http, 2, slice(300, 330), 1)
    grown = wait_for(
        lambda: (_live(http, job["id"]).get("training_pixels") or 0) > pixels_before, 60
    )
    assert grown, http.get(f"{API}/jobs/{job['id']}/log").body.decode()
    assert "new strokes taken" in http.get(f"{API}/jobs/{job['id']}/log").body.decode()

    # accept: the name is checked, then the job stops, publishes and segments
    taken = http.post(f"{API}/jobs/{job['id']}/accept", json_body={"name": "tiny-membrane"})
    assert taken.status == 400 and taken.json()["field"] == "name"
    bad = http.post(f"{API}/jobs/{job['id']}/accept", json_body={"name": "../x"})
    assert bad.status == 400 and bad.json()["field"] == "name"
    accepted = http.post(f"{API}/jobs/{job['id']}/accept", json_body={"name": "my-mito"})
    assert accepted.status == 202 and accepted.json()["accepted_name"] == "my-mito"
    twice = http.post(f"{API}/jobs/{job['id']}/accept", json_body={"name": "other"})
    assert twice.status == 409
    done = wait_for(lambda: _job(http, job["id"])["state"] in ("succeeded", "failed"), 120)
    row = _job(http, job["id"])
    assert done and row["state"] == "succeeded", row
    result = row["result"]
    assert result["model"] == "my-mito" and result["stopped_by"] == "stopped"
    assert (root / "models" / "my-mito" / "model.pytorch").is_file()
    assert not (root / "models" / "tuned").exists()
    card = json.loads((root / "models" / "my-mito" / "model.json").read_text())
    assert card["name"] == "my-mito"
    # the model page says what its scores were computed on, and how it did on the ground truth
    page = http.get(f"{API}/models/my-mito").json()
    assert page["validation"] == "on 15 % of your strokes, held out"
    truth = result["ground_truth"]
    for key in ("mean_dice", "mean_iou", "pixel_error", "slices", "label"):
        assert page["ground_truth"][key] == truth[key], key
    assert "nobody painted" in truth["label"]
    assert not (root / ".biosegment" / "jobs" / job["id"] / "live").exists()
    assert _live(http, job["id"])["available"] is False
    gone = http.get(f"{API}/jobs/{job['id']}/live/tiles/z/0/0/0/0.png")
    assert gone.status == 404
    # the step curve stays for the jobs page
    assert http.get(f"{API}/jobs/{job['id']}/steps").json()["steps"]
    segment_id = result["segmentation_job"]
    finished = wait_for(lambda: _job(http, segment_id)["state"] == "succeeded", 120)
    assert finished, _job(http, segment_id)
    names = [
        layer.get("name")
        for layer in http.get(f"{API}/datasets/{DEMO_DATASET}").json()["layers"]
        if layer["kind"] == "segmentation"
    ]
    assert result["segmentation"] in names
    assert _job(http, segment_id)["params"]["model"] == "my-mito"


def test_discard_leaves_nothing_behind(site):
    http, root = site
    job = _start_training(http, "thrown-away")
    assert wait_for(lambda: _live(http, job["id"])["available"], 120)
    folder = root / ".biosegment" / "jobs" / job["id"]
    assert (folder / "live").is_dir()
    reply = http.post(f"{API}/jobs/{job['id']}/discard")
    assert reply.status == 200, reply.body
    assert wait_for(lambda: _job(http, job["id"])["state"] == "cancelled", 60)
    assert wait_for(lambda: not (folder / "model").exists() and not (folder / "live").exists(), 10)
    assert not (folder / "steps.jsonl").exists() and not (folder / "control.json").exists()
    assert not (root / "models" / "thrown-away").exists()
    assert "thrown-away" not in [m["name"] for m in http.get(f"{API}/models").json()]
    assert http.post(f"{API}/jobs/{job['id']}/accept", json_body={}).status == 409


def test_live_endpoints_refuse_what_they_cannot_serve(site):
    http, _ = site
    assert http.get(f"{API}/jobs/nope/live").status == 404
    assert http.get(f"{API}/jobs/nope/steps").status == 404
    assert http.post(f"{API}/jobs/nope/accept", json_body={}).status == 404
    assert http.post(f"{API}/jobs/nope/discard").status == 404
    segment = http.post(
        f"{API}/jobs/segment", json_body={"dataset": DEMO_DATASET, "model": "tiny-membrane"}
    ).json()
    for reply in (
        http.get(f"{API}/jobs/{segment['id']}/live"),
        http.get(f"{API}/jobs/{segment['id']}/steps"),
        http.post(f"{API}/jobs/{segment['id']}/accept", json_body={}),
        http.post(f"{API}/jobs/{segment['id']}/discard"),
        http.get(f"{API}/jobs/{segment['id']}/live/tiles/z/0/0/0/0.png"),
    ):
        assert reply.status == 409 and reply.json()["field"] == "job_id"
    unknown_field = http.post(f"{API}/jobs/{segment['id']}/accept", json_body={"nam": "x"})
    assert unknown_field.status == 400
