"""Training settings are refused before anything is queued when the network cannot take them
or their training step needs more memory than the device has; a refusal names the settings
and says what fits. The same check runs for the web API, the CLI and a queued job as it
starts.

Everything is real: the app over HTTP, ``biosegment`` subprocesses, a Huey consumer in this
process, the catalog and the queue read back from their files.
"""

from __future__ import annotations

import re
import resource
import time

import pytest

from biosegment.catalog import open_catalog
from biosegment.daemon.consumer import ConsumerHost
from biosegment.engine.train_settings import TrainingSettings
from biosegment.errors import InputError
from biosegment.tasks.queue import make_huey, pending_job_messages
from biosegment.tasks.service import JobService
from job_fixtures import TRAIN_DATASET, job_row, make_folder, run_biosegment, wait_for
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, make_tiny_model, serve

#: The request of the report: within every bound of the API, and petabytes of memory.
HUGE = {"crop_size": 4096, "batch_size": 1024, "feature_maps": 256, "levels": 8}


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(root)  # 4 feature maps, 2 levels
    config = config_for(root)
    # No consumer runs here: a job that is accepted stays queued, which is what is looked at.
    with serve(config) as server:
        yield Http(server.url), config


def nothing_queued(config) -> bool:
    """No job row in the catalog and no message on the queue."""
    with open_catalog(config.data_dir) as catalog:
        rows = catalog.jobs()
    return rows == [] and pending_job_messages(make_huey(config)) == []


def test_a_training_request_beyond_the_memory_is_refused_saying_what_fits(site):
    http, config = site
    reply = http.post(
        "/api/v1/jobs/train", json_body={"dataset": DEMO_DATASET, "base_model": "scratch", **HUGE}
    )
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert reply.json()["field"] == "batch_size"
    assert "crop_size 4096, batch_size 1024, feature_maps 256, levels 8 need about" in error
    assert re.search(r"TB to train on cpu \(fp32\), more than the [\d.]+ [GT]B of RAM", error)
    # no one setting fits alone: the defaults are offered, with what they need
    assert "the defaults (crop_size 128, batch_size 16, feature_maps 8, levels 4) need" in error
    assert nothing_queued(config)


def test_the_largest_batch_that_fits_is_offered_and_is_accepted(site):
    http, config = site
    body = {"dataset": DEMO_DATASET, "base_model": "scratch", "crop_size": 512}
    refused = http.post("/api/v1/jobs/train", json_body={**body, "batch_size": 1024})
    assert refused.status == 400 and refused.json()["field"] == "batch_size"
    error = refused.json()["error"]
    assert "with the other settings as given: batch_size up to" in error
    assert "available now" in error
    largest = int(re.search(r"batch_size up to (\d+)", error).group(1))
    assert 1 <= largest < 1024
    assert nothing_queued(config)
    # a little under the largest: the free memory of a shared machine moves between requests
    accepted = http.post(
        "/api/v1/jobs/train", json_body={**body, "batch_size": max(1, largest * 9 // 10)}
    )
    assert accepted.status == 202, accepted.body


def test_the_default_fine_tune_is_checked_with_its_base_models_network(site):
    """Without a base model the demo project's default model is fine-tuned: its own network
    (8 feature maps, 4 levels) is what must fit, and the refusal offers only what a fine-tune
    may change."""
    http, config = site
    reply = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "crop_size": 4096, "batch_size": 1024},
    )
    assert reply.status == 400
    error = reply.json()["error"]
    assert "crop_size 4096, batch_size 1024 (with the base model's network) need about" in error
    assert "feature_maps" not in error
    assert nothing_queued(config)


def test_a_request_giving_a_network_trains_that_network_not_the_default_model(site):
    """A fine-tune trains its base model's network, so a request that gives a network's shape
    and no base model trains a new network of that shape, not the demo project's default
    model (8 feature maps, 4 levels); a base model named with another shape is refused."""
    http, config = site
    other = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "base_model": "tiny-membrane", "levels": 3},
    )
    assert other.status == 400, other.body
    assert other.json()["field"] == "levels"
    assert "base model 'tiny-membrane', whose levels is 2, not 3" in other.json()["error"]
    assert nothing_queued(config)
    own = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "base_model": "tiny-membrane", "levels": 2},
    )
    assert own.status == 202, own.body
    new = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "feature_maps": 4, "levels": 2, "name": "small"},
    )
    assert new.status == 202, new.body
    params = new.json()["params"]
    assert params["base_model"] is None
    assert params["settings"]["levels"] == 2 and params["settings"]["feature_maps"] == 4
    default = http.post("/api/v1/jobs/train", json_body={"dataset": DEMO_DATASET})
    assert default.status == 202, default.body
    assert default.json()["params"]["base_model"] == "demo-membrane"


@pytest.mark.parametrize(
    "options, field, words",
    [
        ({"minutes": True}, "minutes", "valid number"),
        ({"epochs": "3"}, "epochs", "valid integer"),
        ({"epochs": True}, "epochs", "valid integer"),
        ({"batch_size": 16.0}, "batch_size", "valid integer"),
        ({"learning_rate": "0.01"}, "learning_rate", "valid number"),
        ({"name": 7}, "name", "valid string"),
        ({"crop_size": 100}, "crop_size", "multiple of 16 (2 ** levels, with levels 4)"),
        ({"crop_size": 96, "levels": 6}, "crop_size", "for example 64 or 128"),
    ],
)
def test_train_values_are_taken_in_their_own_type_and_every_rule_is_checked(
    site, options, field, words
):
    http, config = site
    body = {"dataset": DEMO_DATASET, "base_model": "scratch", **options}
    reply = http.post("/api/v1/jobs/train", json_body=body)
    assert reply.status == 400, reply.body
    assert reply.json()["field"] == field
    assert words in reply.json()["error"]
    assert nothing_queued(config)


def test_the_crop_rule_is_the_trained_networks(site):
    """A crop of 100 is no multiple of 16 for a new 4-level network, but a 2-level base
    model takes it (multiples of 4); whole numbers given as such are accepted."""
    http, _ = site
    fine_tune = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "base_model": "tiny-membrane", "crop_size": 100},
    )
    assert fine_tune.status == 202, fine_tune.body
    typed = http.post(
        "/api/v1/jobs/train",
        json_body={"dataset": DEMO_DATASET, "minutes": 2, "epochs": 3, "learning_rate": 1},
    )
    assert typed.status == 202, typed.body
    assert typed.json()["params"]["settings"]["minutes"] == 2.0


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, demo=False, training=True)


def test_the_cli_refuses_what_does_not_fit_and_queues_nothing(folder):
    root, config = folder
    options = [f"--{key.replace('_', '-')}={value}" for key, value in HUGE.items()]
    huge = run_biosegment(root, "train", "--dataset", TRAIN_DATASET, *options)
    assert huge.returncode != 0
    text = " ".join(huge.stderr.split())
    assert "batch_size" in text and "need about" in text and "RAM" in text
    odd = run_biosegment(root, "train", "--dataset", TRAIN_DATASET, "--crop-size", "100")
    assert odd.returncode != 0
    assert "crop_size" in odd.stderr and "multiple of 16" in odd.stderr
    assert nothing_queued(config)


def test_a_queued_job_that_does_not_fit_fails_with_the_reason_before_reading_data(folder):
    """A job queued with settings that do not fit the memory free when it starts (queued on
    a machine with more, or by an older BioSegment: the service itself refuses them) fails at
    once with the reason, and without allocating its network or its batches."""
    root, config = folder
    service = JobService(config)
    try:
        with pytest.raises(InputError, match="need about"):  # the service refuses them
            service.submit_train(dataset=TRAIN_DATASET, base_model="scratch", **HUGE)
    finally:
        service.close()
    settings = TrainingSettings(**HUGE, epochs=1).for_start(fine_tune=False)
    with open_catalog(root) as catalog:
        row = catalog.create_job(
            "train",
            {
                "dataset": TRAIN_DATASET,
                "annotation": None,
                "base_model": None,
                "name": "too-big",
                "settings": settings.as_dict(),
            },
        )
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    host = ConsumerHost(config, role="worker")
    host.start()
    service = JobService(config)
    try:
        started = time.monotonic()
        service.enqueue(row["id"])
        done = wait_for(lambda: job_row(root, row["id"])["state"] == "failed", timeout=60)
        took = time.monotonic() - started
    finally:
        service.close()
        host.stop()
    assert done, job_row(root, row["id"])
    failed = job_row(root, row["id"])
    assert "feature_maps 256, levels 8 need about" in failed["message"]
    assert "the defaults" in failed["message"]
    assert took < 30
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 500, f"the refused job grew the process by {grown_mib:.0f} MiB"
    assert not (root / "models" / "too-big").exists()
