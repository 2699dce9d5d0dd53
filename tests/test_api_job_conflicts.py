"""API: requests about jobs that collide: a model name two jobs want, a retry clicked twice, a
double click on "Segment this dataset", accept and discard sent together.

Real HTTP against the running app, a real catalog and a real (SQLite) Huey queue; no consumer
runs, so jobs stay queued, and a train job is made "running" through the catalog as a runner
that picked it up would. Requests meant to collide are sent from threads released together.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from biosegment.catalog import open_catalog
from biosegment.tasks.queue import make_huey
from biosegment.tasks.recovery import recover_jobs
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, make_tiny_model, serve

API = "/api/v1"
DEAD_RUNNER = "test-host:999999:worker"  # no process holds its presence lock


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    config = config_for(root)
    with serve(config) as server:
        yield Http(server.url), root, config


def _train(http: Http, name: str):
    return http.post(
        f"{API}/jobs/train", json_body={"dataset": DEMO_DATASET, "name": name, "epochs": 1}
    )


def _run(root, job_id: str) -> None:
    """Mark a queued job running, as a runner that took it would."""
    with open_catalog(root) as catalog:
        assert catalog.try_claim_job(job_id, DEAD_RUNNER)["state"] == "running"


def _row(root, job_id: str) -> dict:
    with open_catalog(root) as catalog:
        return catalog.job(job_id)


def _together(*calls):
    """Run the calls in threads released at the same moment; their results, in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_a_name_accepted_for_a_running_job_is_held_across_a_restart_until_the_job_ends(site):
    http, root, config = site
    first = _train(http, "first")
    assert first.status == 202
    job = first.json()
    _run(root, job["id"])
    accepted = http.post(f"{API}/jobs/{job['id']}/accept", json_body={"name": "chosen"})
    assert accepted.status == 202 and accepted.json()["accepted_name"] == "chosen"

    clash = _train(http, "chosen")
    assert clash.status == 409 and clash.json()["field"] == "name"
    assert job["id"] in clash.json()["error"]
    # the job publishes "chosen" now, so the name it was given is free again
    assert _train(http, "first").status == 202

    # its runner dies: recovery queues the job again, and the name stays held
    huey = make_huey(config)
    try:
        with open_catalog(root) as catalog:
            assert recover_jobs(catalog, huey, root).requeued == [job["id"]]
    finally:
        huey.storage.close()
    assert _row(root, job["id"])["state"] == "queued"
    again = _train(http, "chosen")
    assert again.status == 409 and job["id"] in again.json()["error"]

    # once the job has ended without publishing, the name is free
    assert http.post(f"{API}/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    assert _train(http, "chosen").status == 202


def test_a_retry_asks_for_the_name_again(site):
    http, root, _ = site
    job = _train(http, "retried").json()
    assert http.post(f"{API}/jobs/{job['id']}/cancel").status == 200
    retried = http.post(f"{API}/jobs/{job['id']}/retry")
    assert retried.status == 202 and retried.json()["params"]["name"] == "retried"
    twice = http.post(f"{API}/jobs/{job['id']}/retry")
    assert twice.status == 409 and twice.json()["field"] == "name"
    assert retried.json()["id"] in twice.json()["error"]
    named = [
        j for j in http.get(f"{API}/jobs?kind=train").json() if j["params"]["name"] == "retried"
    ]
    assert len(named) == 2  # the cancelled job and one retry, however often Retry is clicked


def test_a_double_click_on_segment_makes_one_job(site):
    http, _, _ = site
    body = {"dataset": DEMO_DATASET, "model": "tiny-membrane"}
    replies = _together(*[lambda: http.post(f"{API}/jobs/segment", json_body=body)] * 4)
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200, 200, 200, 202], [r.body for r in replies]
    assert len({reply.json()["id"] for reply in replies}) == 1
    job = replies[0].json()
    assert [j["id"] for j in http.get(f"{API}/jobs").json()] == [job["id"]]

    # other settings are another segmentation
    other = http.post(f"{API}/jobs/segment", json_body={**body, "window": 256})
    assert other.status == 202 and other.json()["id"] != job["id"]

    # a retry identical to a queued segmentation answers with it, too
    assert http.post(f"{API}/jobs/{job['id']}/cancel").status == 200
    fresh = http.post(f"{API}/jobs/segment", json_body=body)
    assert fresh.status == 202 and fresh.json()["id"] != job["id"]
    retried = http.post(f"{API}/jobs/{job['id']}/retry")
    assert retried.status == 200 and retried.json()["id"] == fresh.json()["id"]

    # a name of its own is another output, asked for once however often it is sent
    named = http.post(f"{API}/jobs/segment", json_body={**body, "name": "second-look"})
    assert named.status == 202 and named.json()["id"] != fresh.json()["id"]
    same_name = http.post(f"{API}/jobs/segment", json_body={**body, "name": "second-look"})
    assert same_name.status == 200 and same_name.json()["id"] == named.json()["id"]


def test_accept_and_discard_sent_together_one_wins_and_the_other_is_refused(site):
    http, root, config = site
    for attempt in range(4):
        job = _train(http, f"raced-{attempt}").json()
        _run(root, job["id"])
        path = f"{API}/jobs/{job['id']}"
        accept, discard = _together(
            lambda path=path: http.post(f"{path}/accept", json_body={"name": "winner"}),
            lambda path=path: http.post(f"{path}/discard"),
        )
        assert sorted([accept.status, discard.status]) in ([200, 409], [202, 409]), (
            accept.body,
            discard.body,
        )
        row = _row(root, job["id"])
        control = json.loads(
            (root / ".biosegment" / "jobs" / job["id"] / "control.json").read_text()
        )
        if accept.status == 202:
            assert "already accepted" in discard.json()["error"]
            assert row["decision"] == "accepted" and row["model_name"] == "winner"
            assert not row["cancel_requested"] and control["action"] == "accept"
            # the job is left to publish "winner"; end it so the next round can accept the name
            with open_catalog(root) as catalog:
                catalog.update_job(job["id"], state="failed", message="ended by the test")
        else:
            assert "already discarded" in accept.json()["error"]
            assert row["decision"] == "discarded" and row["cancel_requested"]
            assert control["action"] == "discard"
        assert http.post(f"{API}/jobs/{job['id']}/discard").status == 409
    assert not (root / "models" / "winner").exists()
