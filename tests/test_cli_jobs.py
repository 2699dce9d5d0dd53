"""The job commands as people type them: real ``biosegment`` subprocesses on a data folder.

Without a daemon, ``--wait`` runs the job in the calling process; with one, it follows the
queued job. Either way the job row, outputs and exit status must be the same.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from biosegment.catalog import open_catalog
from biosegment.daemon import daemon_running
from biosegment.engine.train_settings import PERSON_OPTIONS
from job_fixtures import (
    DEMO_DATASET,
    REPO,
    TINY_MODEL,
    TRAIN_DATASET,
    biosegment_env,
    job_row,
    make_folder,
    run_biosegment,
    start_biosegment,
    stop_process,
    wait_for,
)


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, training=True)


def jobs_json(root, *args) -> list[dict]:
    result = run_biosegment(root, "jobs", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_segment_wait_without_a_daemon_runs_here_with_a_job_row(folder):
    root, _ = folder
    result = run_biosegment(
        root, "segment", DEMO_DATASET, "--model", TINY_MODEL, "--block-z", "2", "--wait"
    )
    assert result.returncode == 0, result.stderr
    assert "running here" in result.stderr
    assert f"segmentations/{DEMO_DATASET}/{TINY_MODEL}/labels.tif" in result.stdout
    assert "100.0%" in result.stderr  # the progress reached the end
    [job] = jobs_json(root)
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    assert job["worker"].endswith(":cli") and job["params"]["settings"]["block_z"] == 2
    assert (root / "segmentations" / DEMO_DATASET / TINY_MODEL / "segmentation.json").is_file()
    detail = run_biosegment(root, "jobs", job["id"][:6])
    assert detail.returncode == 0 and "block 3/3 (z 4-4) done" in detail.stdout


def test_train_wait_without_a_daemon_publishes_the_model(folder):
    root, _ = folder
    result = run_biosegment(
        root,
        "train",
        "--dataset",
        TRAIN_DATASET,
        "--base-model",
        TINY_MODEL,
        "--epochs",
        "2",
        "--steps-per-epoch",
        "2",
        "--crop-size",
        "32",
        "--batch-size",
        "2",
        "--name",
        "cli-model",
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["state"] == "succeeded" and [m["epoch"] for m in row["metrics"]][-2:] == [1, 2]
    assert (root / "models" / "cli-model" / "model.pytorch").is_file()
    models = json.loads(run_biosegment(root, "models", "--json").stdout)
    assert {m["name"]: m["parent"] for m in models}["cli-model"] == TINY_MODEL


def test_train_minutes_budget_ends_the_run_by_time(folder):
    root, _ = folder
    result = run_biosegment(
        root,
        "train",
        "--dataset",
        TRAIN_DATASET,
        "--base-model",
        "scratch",
        "--minutes",
        "0.1",
        "--crop-size",
        "32",
        "--batch-size",
        "2",
        "--feature-maps",
        "4",
        "--levels",
        "2",
        "--name",
        "timed",
        "--wait",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    settings = row["params"]["settings"]
    assert settings["minutes"] == 0.1 and settings["epochs"] is None
    assert row["params"]["base_model"] is None
    assert row["state"] == "succeeded" and row["result"]["stopped_by"] == "time_budget"
    card = json.loads((root / "models" / "timed" / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["elapsed_s"] <= 6.0 + 2.0  # 6 s, a last step's overrun at most
    bad = run_biosegment(root, "train", "--dataset", TRAIN_DATASET, "--minutes", "0")
    assert bad.returncode != 0 and "--minutes" in bad.stderr


def test_train_options_are_the_engine_option_rules(folder):
    """``train --help`` lists every rule of the engine with its help; the bounds are enforced."""
    root, _ = folder
    shown = run_biosegment(root, "train", "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    for rule in PERSON_OPTIONS:
        assert "--" + rule.name.replace("_", "-") in text
        assert rule.help[1:40] in text
    bad = run_biosegment(root, "train", "--dataset", TRAIN_DATASET, "--learning-rate", "2")
    assert bad.returncode == 2 and "--learning-rate" in bad.stderr
    catalog = open_catalog(root)
    try:
        assert catalog.jobs() == []  # nothing was queued
    finally:
        catalog.close()


def test_queue_cancel_retry_and_list_without_waiting(folder):
    root, _ = folder
    queued = run_biosegment(root, "segment", DEMO_DATASET, "--model", TINY_MODEL, "--json")
    assert queued.returncode == 0, queued.stderr
    job = json.loads(queued.stdout)
    assert job["state"] == "queued"
    listing = run_biosegment(root, "jobs")
    assert job["id"] in listing.stdout and "queued" in listing.stdout

    cancelled = run_biosegment(root, "cancel", job["id"], "--json")
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    retried = run_biosegment(root, "retry", job["id"], "--json")
    assert retried.returncode == 0, retried.stderr
    again = json.loads(retried.stdout)
    assert again["state"] == "queued" and again["params"]["retry_of"] == job["id"]
    assert [j["state"] for j in jobs_json(root, "--state", "queued")] == ["queued"]

    refused = run_biosegment(root, "retry", again["id"])
    assert refused.returncode == 1 and "only failed or cancelled" in refused.stderr
    unknown = run_biosegment(root, "cancel", "ffffffff")
    assert unknown.returncode == 1 and "no job" in unknown.stderr
    bad = run_biosegment(root, "segment", "no-such-dataset", "--model", TINY_MODEL)
    assert bad.returncode == 1 and "no-such-dataset" in bad.stderr


def test_wait_follows_a_queued_job_when_a_daemon_serves_the_folder(folder, tmp_path):
    root, _ = folder
    daemon = start_biosegment(root, "run", "--headless", log=tmp_path / "daemon.log")
    try:
        assert wait_for(lambda: daemon_running(root), 60)
        result = run_biosegment(root, "segment", DEMO_DATASET, "--model", TINY_MODEL, "--wait")
        assert result.returncode == 0, result.stderr
        assert "queued" in result.stderr and "running here" not in result.stderr
        [job] = jobs_json(root)
        assert job["state"] == "succeeded" and job["worker"].endswith(":daemon")
    finally:
        assert stop_process(daemon) == 0


def test_a_damaged_dataset_is_refused_before_any_job_is_made(folder):
    root, _ = folder
    stack = root / "EM" / DEMO_DATASET / "raw" / f"{DEMO_DATASET}.tif"
    stack.write_bytes(stack.read_bytes()[:4096])
    result = run_biosegment(root, "segment", DEMO_DATASET, "--model", TINY_MODEL, "--wait")
    assert result.returncode == 1, result.stderr
    assert f"{DEMO_DATASET}.tif" in result.stderr
    assert jobs_json(root) == []


def test_a_failed_job_exits_1_and_names_the_file(folder):
    root, _ = folder
    # The scan lists annotation slices without decoding them: the job is the first to read it.
    annotation = root / "annotations" / TRAIN_DATASET / "broken"
    annotation.mkdir(parents=True)
    (annotation / "z00001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    result = run_biosegment(root, "train", "--annotation", "broken", "--epochs", "1", "--wait")
    assert result.returncode == 1, result.stderr
    assert "failed" in result.stderr and "z00001.png" in result.stderr
    [job] = jobs_json(root)
    assert job["state"] == "failed" and "z00001.png" in job["message"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_of_an_in_process_job_requeues_it(folder):
    root, _ = folder
    # Far more epochs than can finish while the test watches: the interrupt always finds the
    # job running. The child gets the default SIGINT disposition, as under a terminal: a
    # runner that starts the suite in the background passes SIGINT down as ignored.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "biosegment",
            "--config",
            str(root / "biosegment.toml"),
            "train",
            "--dataset",
            TRAIN_DATASET,
            "--epochs",
            "100000",
            "--steps-per-epoch",
            "1",
            "--crop-size",
            "32",
            "--batch-size",
            "2",
            "--feature-maps",
            "4",
            "--levels",
            "2",
            "--wait",
        ],
        cwd=str(REPO),
        env=biosegment_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:

        def first_epochs():
            catalog = open_catalog(root)
            try:
                rows = catalog.jobs()
            finally:
                catalog.close()
            return rows and len(rows[0]["metrics"]) >= 2 and rows[0]

        job = wait_for(first_epochs, timeout=120, interval=0.05)
        assert job, process.stderr.read() if process.poll() is not None else "no progress"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "re-queued" in stderr
    row = job_row(root, job["id"])
    assert row["state"] == "queued" and "interrupted" in row["message"]


def test_a_queued_job_id_is_alone_on_stdout_for_scripts(folder):
    """``id=$(biosegment segment ...)`` gets the job id; the words for people go to stderr."""
    root, _ = folder
    segment = run_biosegment(root, "segment", DEMO_DATASET, "--model", TINY_MODEL)
    train = run_biosegment(root, "train", "--dataset", TRAIN_DATASET, "--epochs", "1")
    rows = {row["id"]: row for row in jobs_json(root)}
    for result, kind in ((segment, "segment"), (train, "train")):
        assert result.returncode == 0, result.stderr
        job_id = result.stdout.strip()
        assert result.stdout == job_id + "\n"
        assert rows[job_id]["kind"] == kind and rows[job_id]["state"] == "queued"
        assert f"job {job_id} ({kind}) queued" in result.stderr
        assert "no daemon or worker serves this data folder" in result.stderr

    cancelled = run_biosegment(root, "cancel", segment.stdout.strip())
    assert cancelled.returncode == 0, cancelled.stderr
    retried = run_biosegment(root, "retry", segment.stdout.strip())
    assert retried.returncode == 0, retried.stderr
    again = job_row(root, retried.stdout.strip())
    assert again["params"]["retry_of"] == segment.stdout.strip()
    # --json keeps printing the whole row, and nothing else, on stdout
    as_json = run_biosegment(root, "segment", DEMO_DATASET, "--model", TINY_MODEL, "--json")
    assert json.loads(as_json.stdout)["kind"] == "segment"
