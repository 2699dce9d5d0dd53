"""Job rows: creation, lookup, progress, metrics, cancellation, and writers in several processes."""

from __future__ import annotations

import multiprocessing

import pytest

from biosegment.catalog import open_catalog
from biosegment.errors import NotFoundError


@pytest.fixture
def catalog(tmp_path):
    with open_catalog(tmp_path) as opened:
        yield opened


def test_a_new_job_is_queued_with_its_parameters(catalog):
    job = catalog.create_job("segment", {"dataset": "EPFL", "model": "mito 2D"})
    assert len(job["id"]) == 8
    assert job["state"] == "queued" and job["progress"] == 0.0
    assert job["params"] == {"dataset": "EPFL", "model": "mito 2D"}
    assert job["metrics"] == [] and job["cancel_requested"] is False and job["attempts"] == 0
    assert catalog.job(job["id"]) == job


def test_a_unique_prefix_finds_a_job_and_unknown_ids_do_not(catalog):
    job = catalog.create_job("train", {})
    assert catalog.job(job["id"][:4])["id"] == job["id"]
    with pytest.raises(NotFoundError):
        catalog.job("zzzzzzzz")
    with pytest.raises(NotFoundError):
        catalog.job("abc")  # too short to be taken as a prefix


def test_updates_stamp_start_and_finish(catalog):
    job = catalog.create_job("segment", {})
    running = catalog.update_job(
        job["id"],
        state="running",
        progress=0.25,
        eta=12.5,
        message="block 1 of 4",
        worker="gpu-box",
    )
    assert running["started_at"] and running["finished_at"] is None
    assert running["eta"] == 12.5 and running["worker"] == "gpu-box"
    done = catalog.update_job(
        job["id"], state="succeeded", progress=1.0, result={"segmentation": "auto"}
    )
    assert done["finished_at"] and done["started_at"] == running["started_at"]
    assert done["result"] == {"segmentation": "auto"}


def test_bad_updates_are_refused(catalog):
    job = catalog.create_job("segment", {})
    with pytest.raises(ValueError, match="progress"):
        catalog.update_job(job["id"], progress=1.5)
    with pytest.raises(ValueError, match="state"):
        catalog.update_job(job["id"], state="paused")
    with pytest.raises(ValueError, match="colour"):
        catalog.update_job(job["id"], colour="red")
    assert catalog.job(job["id"])["state"] == "queued"


def test_cancel_stops_a_queued_job_and_flags_a_running_one(catalog):
    queued = catalog.create_job("segment", {})
    assert catalog.request_cancel(queued["id"])["state"] == "cancelled"
    running = catalog.create_job("train", {})
    catalog.update_job(running["id"], state="running")
    flagged = catalog.request_cancel(running["id"])
    assert flagged["state"] == "running" and flagged["cancel_requested"] is True
    finished = catalog.create_job("segment", {})
    catalog.update_job(finished["id"], state="succeeded")
    assert catalog.request_cancel(finished["id"])["state"] == "succeeded"


def test_claim_counts_attempts_and_honours_a_cancel(catalog):
    job = catalog.create_job("train", {})
    claimed = catalog.claim_job(job["id"], "worker-1")
    assert claimed["state"] == "running" and claimed["attempts"] == 1
    assert catalog.claim_job(job["id"], "worker-2")["attempts"] == 2
    other = catalog.create_job("train", {})
    catalog.request_cancel(other["id"])
    assert catalog.claim_job(other["id"], "worker-1")["state"] == "cancelled"


def test_listing_filters_and_orders(catalog):
    a = catalog.create_job("segment", {})
    b = catalog.create_job("train", {})
    c = catalog.create_job("segment", {})
    catalog.update_job(c["id"], state="running")
    assert [j["id"] for j in catalog.jobs()] == [c["id"], b["id"], a["id"]]
    assert [j["id"] for j in catalog.jobs(kind="segment")] == [c["id"], a["id"]]
    assert [j["id"] for j in catalog.jobs(state="queued", limit=1)] == [b["id"]]
    assert [j["id"] for j in catalog.jobs_in_state("queued")] == [a["id"], b["id"]]


def test_metrics_append_per_epoch(catalog):
    job = catalog.create_job("train", {})
    catalog.append_job_metrics(job["id"], {"epoch": 1, "loss": 0.7})
    row = catalog.append_job_metrics(job["id"], {"epoch": 2, "loss": 0.5, "dice": 0.6})
    assert row["metrics"] == [{"epoch": 1, "loss": 0.7}, {"epoch": 2, "loss": 0.5, "dice": 0.6}]


_JOBS_PER_PROCESS = 40


def _write_jobs(root, shared_id, worker, start):
    with open_catalog(root) as catalog:
        start.wait(10)  # both processes begin writing at the same moment
        for n in range(_JOBS_PER_PROCESS):
            job = catalog.create_job("segment", {"worker": worker, "n": n})
            catalog.update_job(job["id"], state="running", progress=0.5)
            catalog.append_job_metrics(shared_id, {"worker": worker, "n": n})


def test_two_processes_writing_at_once_lose_no_writes(tmp_path):
    with open_catalog(tmp_path) as catalog:
        shared = catalog.create_job("train", {})
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_write_jobs, args=(tmp_path, shared["id"], w, start))
        for w in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    with open_catalog(tmp_path) as catalog:
        running = catalog.jobs(state="running", limit=1000)
        assert len(running) == 2 * _JOBS_PER_PROCESS
        metrics = catalog.job(shared["id"])["metrics"]
    assert sorted((m["worker"], m["n"]) for m in metrics) == sorted(
        (w, n) for w in ("a", "b") for n in range(_JOBS_PER_PROCESS)
    )


def test_a_queued_job_is_claimed_exactly_once(catalog):
    job = catalog.create_job("segment", {})
    first = catalog.try_claim_job(job["id"], "worker-1")
    assert first["state"] == "running" and first["worker"] == "worker-1"
    assert catalog.try_claim_job(job["id"], "worker-2") is None
    assert catalog.job(job["id"])["worker"] == "worker-1"
    assert catalog.job(job["id"])["attempts"] == 1


def test_threads_racing_for_one_queued_job_claim_it_once(catalog):
    import threading

    job = catalog.create_job("segment", {})
    results = []
    start = threading.Barrier(8)

    def race(name):
        start.wait()
        results.append(catalog.try_claim_job(job["id"], name))

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert catalog.job(job["id"])["attempts"] == 1
