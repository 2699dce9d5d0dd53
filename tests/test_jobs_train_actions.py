"""A train job's person-facing actions through the job service: live status, step curve, accept
and discard, with their refusals.

The service, the catalog and the queue are real (SQLite); no job trains here: rows are claimed
through the catalog as a runner would, and the files a running job writes are written by hand.
A discarded job's files are removed by whoever consumes the queue, never by the service.
"""

from __future__ import annotations

import json

import pytest

from biosegment.catalog import open_catalog
from biosegment.daemon.consumer import ConsumerHost
from biosegment.errors import InputError, NotFoundError, StateError
from biosegment.tasks.queue import queue_tasks
from biosegment.tasks.service import JobService
from biosegment.tasks.workspace import JobWorkspace
from job_fixtures import TINY_MODEL, TRAIN_DATASET, make_folder, wait_for


@pytest.fixture
def service(tmp_path):
    _, config = make_folder(tmp_path, demo=False, training=True)
    jobs = JobService(config)
    yield jobs
    jobs.close()


def _train_job(service: JobService, name: str) -> dict:
    return service.submit_train(dataset=TRAIN_DATASET, base_model=TINY_MODEL, name=name)


def _claim(service: JobService, job_id: str) -> None:
    """Mark the job running, as a runner that picked it up would."""
    catalog = open_catalog(service.root)
    try:
        assert catalog.try_claim_job(job_id, "test:worker")["state"] == "running"
    finally:
        catalog.close()


def _job_files(workspace: JobWorkspace) -> list:
    workspace.training_dir.mkdir(parents=True)
    (workspace.training_dir / "model.json").write_text("{}", encoding="utf-8")
    workspace.live_dir.mkdir(parents=True)
    (workspace.live_dir / "live.json").write_text("{}", encoding="utf-8")
    workspace.steps_file.write_text('{"step": 1, "loss": 0.5}\n', encoding="utf-8")
    workspace.log_file.write_text("training\n", encoding="utf-8")
    return [workspace.training_dir, workspace.live_dir, workspace.steps_file]


def test_live_actions_refuse_unknown_jobs_and_other_kinds(service):
    segment = service.submit_segment(TRAIN_DATASET, TINY_MODEL)
    for action in (
        service.live_status,
        service.live_snapshot,
        service.training_steps,
        service.accept_training,
        service.discard_training,
    ):
        with pytest.raises(NotFoundError):
            action("nope")
        with pytest.raises(StateError) as refused:
            action(segment["id"])
        assert refused.value.where == "job_id" and "segment job" in refused.value.reason


def test_status_and_steps_of_a_train_job_come_from_its_folder(service):
    job = _train_job(service, "watched")
    status = service.live_status(job["id"])
    assert status["available"] is False and status["dataset"] == TRAIN_DATASET
    assert service.live_snapshot(job["id"]) is None
    workspace = JobWorkspace.of(service.config, job["id"])
    workspace.steps_file.parent.mkdir(parents=True)
    lines = [json.dumps({"step": step, "loss": 1.0 / step}) for step in (1, 2, 3)]
    workspace.steps_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    steps = service.training_steps(job["id"], after=1)
    assert [s["step"] for s in steps["steps"]] == [2, 3] and steps["state"] == "queued"


def test_accept_checks_state_and_name_once(service):
    job = _train_job(service, "tuned")
    other = _train_job(service, "busy")
    with pytest.raises(StateError):
        service.accept_training(job["id"])  # queued: nothing to accept yet
    _claim(service, job["id"])
    with pytest.raises(InputError) as refused:  # a model has it
        service.accept_training(job["id"], name=TINY_MODEL)
    assert refused.value.where == "name" and not isinstance(refused.value, StateError)
    with pytest.raises(StateError) as held:  # another job holds it: a conflict naming the job
        service.accept_training(job["id"], name="busy")
    assert held.value.where == "name" and other["id"] in held.value.reason
    # the name a job was given is not taken by the job itself; submitting it again is refused
    accepted = service.accept_training(job["id"])
    assert accepted["accepted_name"] == "tuned" and accepted["id"] == job["id"]
    control = json.loads(JobWorkspace.of(service.config, job["id"]).control_file.read_text())
    assert control["action"] == "accept" and control["name"] == "tuned"
    with pytest.raises(StateError, match="already accepted"):
        service.accept_training(job["id"], name="another")
    with pytest.raises(StateError, match=f"held by job {job['id']}"):
        _train_job(service, "tuned")
    assert other["state"] == "queued"


def test_discard_of_a_stopped_job_leaves_the_removal_to_the_queue(service):
    job = _train_job(service, "thrown-away")
    workspace = JobWorkspace.of(service.config, job["id"])
    made = _job_files(workspace)
    row = service.discard_training(job["id"])
    assert row["state"] == "cancelled"  # queued: cancelled at once
    assert all(path.exists() for path in made), "the service itself removed files"
    host = ConsumerHost(service.config, role="worker")
    host.start()
    try:
        assert wait_for(lambda: not any(path.exists() for path in made), timeout=30)
    finally:
        host.stop()
    assert not workspace.control_file.exists()
    assert workspace.log_file.is_file()  # the job's record stays
    with pytest.raises(StateError):
        service.accept_training(job["id"])


def test_a_finished_job_cannot_be_discarded_and_an_undiscarded_one_keeps_its_files(service):
    job = _train_job(service, "kept")
    workspace = JobWorkspace.of(service.config, job["id"])
    made = _job_files(workspace)
    service.cancel(job["id"])  # cancelled, not discarded: the files stay
    queue_tasks(service.huey).discard_job(job["id"])  # a stray message removes nothing either
    host = ConsumerHost(service.config, role="worker")
    host.start()
    try:
        assert wait_for(lambda: service.huey.pending_count() == 0, timeout=30)
    finally:
        host.stop()
    assert all(path.exists() for path in made)
    catalog = open_catalog(service.root)
    try:
        finished = _train_job(service, "finished")
        catalog.try_claim_job(finished["id"], "test:worker")
        catalog.update_job(finished["id"], state="succeeded")
    finally:
        catalog.close()
    with pytest.raises(StateError, match="delete the model instead"):
        service.discard_training(finished["id"])
