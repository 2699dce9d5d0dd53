"""API: submitting segmentation and training jobs, following, cancelling and retrying them."""

from __future__ import annotations

import numpy as np
import pytest

from biosegment.engine.train_settings import (
    FINE_TUNE_LEARNING_RATE,
    NEW_NETWORK_LEARNING_RATE,
    PERSON_OPTIONS,
)
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, make_tiny_model, serve


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)
    # No consumer runs here: jobs stay queued, which is what these tests look at.
    with serve(config_for(root)) as server:
        yield Http(server.url), root


def test_segment_job_is_queued_listed_cancelled_and_retried(site):
    http, _ = site
    reply = http.post(
        "/api/v1/jobs/segment", json_body={"dataset": DEMO_DATASET, "model": "tiny-membrane"}
    )
    assert reply.status == 202
    job = reply.json()
    assert job["kind"] == "segment" and job["state"] == "queued"
    assert job["params"]["dataset"] == DEMO_DATASET and job["params"]["trigger"] == "ui"
    assert [j["id"] for j in http.get("/api/v1/jobs").json()] == [job["id"]]
    assert http.get("/api/v1/jobs?state=running").json() == []
    assert http.get(f"/api/v1/jobs/{job['id']}").json()["progress"] == 0
    log = http.get(f"/api/v1/jobs/{job['id']}/log")
    assert log.status == 200 and log.headers["Content-Type"].startswith("text/plain")
    early_retry = http.post(f"/api/v1/jobs/{job['id']}/retry")
    assert early_retry.status == 400 and early_retry.json()["field"] == "job"
    cancelled = http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert cancelled.status == 200 and cancelled.json()["state"] == "cancelled"
    retried = http.post(f"/api/v1/jobs/{job['id']}/retry")
    assert retried.status == 202 and retried.json()["params"]["retry_of"] == job["id"]
    assert len(http.get("/api/v1/jobs").json()) == 2


def test_segment_options_are_checked_and_stored_as_the_settings(site):
    http, _ = site
    body = {"dataset": DEMO_DATASET, "model": "tiny-membrane", "block_z": 2, "window": 256}
    reply = http.post(
        "/api/v1/jobs/segment", json_body={**body, "precision": "fp32", "output_format": "ome-zarr"}
    )
    assert reply.status == 202
    params = reply.json()["params"]
    assert params["settings"] == {
        "block_z": 2,
        "batch_size": None,
        "window": 256,
        "precision": "fp32",
        "device": None,
        "output_format": "ome-zarr",
        "probabilities": None,
        "objects": None,
        "split": None,
        "min_object_voxels": None,
        "min_object_nm3": None,
    }
    assert "block_z" not in params  # one place for the options: the settings


def test_train_job_from_an_annotation_with_a_base_model(site):
    http, _ = site
    http.post(f"/api/v1/datasets/{DEMO_DATASET}/annotations", json_body={"name": "scribbles"})
    labels = np.full((512, 512), 255, np.uint8)
    labels[10:20] = 1
    http.put(
        f"/api/v1/datasets/{DEMO_DATASET}/annotations/scribbles/slices/0",
        body=labels.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    reply = http.post(
        "/api/v1/jobs/train",
        json_body={
            "dataset": DEMO_DATASET,
            "annotation": "scribbles",
            "base_model": "tiny-membrane",
            "epochs": 2,
            "name": "tuned",
        },
    )
    assert reply.status == 202
    params = reply.json()["params"]
    assert params["annotation"] == "scribbles" and params["base_model"] == "tiny-membrane"
    assert params["settings"]["epochs"] == 2 and params["name"] == "tuned"
    assert params["settings"]["minutes"] is None  # an epoch budget replaces the time budget
    taken = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "annotation": "scribbles", "name": "tuned"},
    )
    job_id = reply.json()["id"]
    assert taken.status == 409 and taken.json()["field"] == "name"
    assert f"held by job {job_id}" in taken.json()["error"]


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/api/v1/jobs/segment", {"dataset": "nope", "model": "tiny-membrane"}, 404, "dataset"),
        ("/api/v1/jobs/segment", {"dataset": DEMO_DATASET, "model": "nope"}, 404, "model"),
        ("/api/v1/jobs/segment", {"dataset": DEMO_DATASET}, 400, "model"),
        (
            "/api/v1/jobs/segment",
            {"dataset": DEMO_DATASET, "model": "tiny-membrane", "name": "../../etc"},
            400,
            "name",
        ),
        (
            "/api/v1/jobs/segment",
            {"dataset": DEMO_DATASET, "model": "tiny-membrane", "precision": "fp8"},
            400,
            "precision",
        ),
        (
            "/api/v1/jobs/segment",
            {"dataset": DEMO_DATASET, "model": "tiny-membrane", "block_z": 0},
            400,
            "block_z",
        ),
        (
            "/api/v1/jobs/segment",
            {"dataset": DEMO_DATASET, "model": "tiny-membrane", "device": "cpu"},
            400,
            "device",
        ),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "annotation": "nope"}, 404, "annotation"),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "base_model": "nope"}, 404, "base_model"),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "epochs": 0}, 400, "epochs"),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "epochs": "many"}, 400, "epochs"),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "minutes": 0}, 400, "minutes"),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "minutes": "soon"}, 400, "minutes"),
        ("/api/v1/jobs/train", {"dataset": DEMO_DATASET, "max_steps": -1}, 400, "max_steps"),
    ],
)
def test_bad_job_requests_name_the_field(site, path, body, status, field):
    http, _ = site
    reply = http.post(path, json_body=body)
    assert reply.status == status
    assert reply.json()["field"] == field
    assert http.get("/api/v1/jobs").json() == []


def test_malformed_json_and_unknown_jobs(site):
    http, _ = site
    broken = http.post(
        "/api/v1/jobs/segment", body=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert broken.status == 400 and broken.json()["field"] == "body"
    for method, path in [
        ("GET", "/api/v1/jobs/nope"),
        ("GET", "/api/v1/jobs/nope/log"),
        ("POST", "/api/v1/jobs/nope/cancel"),
        ("POST", "/api/v1/jobs/nope/retry"),
    ]:
        reply = http.request(method, path)
        assert reply.status == 404, path
        assert reply.json()["error"]
    assert http.get("/api/v1/jobs?state=bogus").json()["field"] == "state"
    assert http.get("/api/v1/jobs?limit=0").json()["field"] == "limit"


def test_train_budget_in_minutes_and_the_base_model_chosen_by_the_service(site):
    """A fine-tune is bounded by minutes (3 by default) and starts from the project's default
    model unless another model, or "scratch", is asked for; the row stores the settings."""
    http, root = site
    plain = http.post("/api/v1/jobs/train", json_body={"dataset": DEMO_DATASET}).json()
    settings = plain["params"]["settings"]
    assert settings["minutes"] == 3.0 and settings["epochs"] is None
    assert settings["feature_maps"] == 8 and settings["crop_size"] == 128
    assert plain["params"]["base_model"] == "demo-membrane"  # the demo project's default model
    # a fine-tune starts at the lower learning rate; the row says which
    assert settings["batch_size"] == 16 and settings["learning_rate"] == FINE_TUNE_LEARNING_RATE
    timed = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "minutes": 1.5, "base_model": "scratch"},
    ).json()
    assert timed["params"]["settings"]["minutes"] == 1.5
    assert timed["params"]["base_model"] is None
    assert timed["params"]["settings"]["learning_rate"] == NEW_NETWORK_LEARNING_RATE
    named = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "max_steps": 40, "base_model": "tiny-membrane"},
    ).json()
    assert named["params"]["base_model"] == "tiny-membrane"
    assert named["params"]["settings"]["max_steps"] == 40
    assert named["params"]["settings"]["minutes"] is None


def test_the_train_request_offers_the_engine_training_options_with_their_bounds(site):
    """The API's train request is made from the engine's option rules: the published schema
    carries each rule's bounds and help, a value outside them is a 400 naming the option, and a
    value inside reaches the job row's settings."""
    http, _ = site
    schema = http.get("/api/v1/openapi.json").json()["components"]["schemas"]["TrainRequest"]
    for rule in PERSON_OPTIONS:
        number = next(s for s in schema["properties"][rule.name]["anyOf"] if s["type"] != "null")
        assert number["type"] == ("integer" if rule.kind is int else "number")
        assert number["maximum"] == rule.high
        low = number.get("exclusiveMinimum") if rule.low_open else number.get("minimum")
        assert low == rule.low and schema["properties"][rule.name]["description"] == rule.describe()
    bad = http.post("/api/v1/jobs/train", json_body={"dataset": DEMO_DATASET, "learning_rate": 2})
    assert bad.status == 400 and bad.json()["field"] == "learning_rate"
    tuned = http.post(
        "/api/v1/jobs/train",
        json_body={
            "dataset": DEMO_DATASET,
            "learning_rate": 0.001,
            "batch_size": 8,
            "crop_size": 64,
            "steps_per_epoch": 12,
        },
    )
    assert tuned.status == 202
    settings = tuned.json()["params"]["settings"]
    assert (settings["learning_rate"], settings["batch_size"]) == (0.001, 8)
    assert (settings["crop_size"], settings["steps_per_epoch"]) == (64, 12)
