"""The daemon's life: start, one per data folder, signals, bad setup.json, automation, chores.

Signals and the lock are tested on real ``biosegment run --headless`` processes; the rest on a
:class:`Daemon` in this process (the same object ``run`` builds), which is quicker to start.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog
from biosegment.daemon import Daemon, DaemonAlreadyRunning, daemon_info, daemon_running
from biosegment.daemon.housekeeping import clean_state_folder
from job_fixtures import (
    TINY_MODEL,
    job_row,
    make_folder,
    run_biosegment,
    start_biosegment,
    stop_process,
    wait_for,
)


def write_stack(path, depth=3, size=48, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tifffile.imwrite(
        path, rng.integers(0, 255, (depth, size, size), dtype=np.uint8), photometric="minisblack"
    )


def datasets(root) -> dict[str, dict]:
    catalog = open_catalog(root)
    try:
        return {d["name"]: d for d in catalog.datasets()}
    finally:
        catalog.close()


def problems(root) -> list[dict]:
    catalog = open_catalog(root)
    try:
        return catalog.problems()
    finally:
        catalog.close()


@pytest.mark.parametrize(
    "sig, args",
    [(signal.SIGTERM, ("--headless",)), (signal.SIGINT, ())],
    ids=["headless-SIGTERM", "no-display-SIGINT"],
)
def test_daemon_serves_alone_and_stops_cleanly_on_signal(tmp_path, sig, args):
    root, config = make_folder(tmp_path)
    log = tmp_path / "daemon.log"
    daemon = start_biosegment(root, "run", *args, log=log)
    try:
        assert wait_for(lambda: daemon_running(root) or daemon.poll() is not None, 60)
        info = wait_for(lambda: (daemon_info(root) or {}).get("url") and daemon_info(root), 30)
        assert info and info["pid"] == daemon.pid, log.read_text()
        assert wait_for(lambda: "serves" in log.read_text(), 10)
        assert info["url"] in log.read_text()
        if not args:  # no display: the window falls back to printing where the UI is
            assert wait_for(lambda: "No display found" in log.read_text(), 10), log.read_text()
        with urllib.request.urlopen(info["url"] + "api/v1/jobs", timeout=10) as response:
            assert response.status == 200 and json.loads(response.read()) == []

        second = run_biosegment(root, "run", "--headless", timeout=60)
        assert second.returncode == 1
        assert "another BioSegment daemon" in second.stderr and str(daemon.pid) in second.stderr
        assert daemon.poll() is None, "the first daemon must survive the refused second one"

        started = time.monotonic()
        assert stop_process(daemon, sig=sig, timeout=30) == 0, log.read_text()[-3000:]
        assert time.monotonic() - started < 15
    finally:
        stop_process(daemon)
    assert not daemon_running(root)
    assert "stopped" in log.read_text()


def test_a_daemon_killed_hard_leaves_no_lock_behind(tmp_path):
    root, config = make_folder(tmp_path, demo=False)
    daemon = start_biosegment(root, "run", "--headless", log=tmp_path / "daemon.log")
    try:
        assert wait_for(lambda: daemon_running(root), 60)
        stop_process(daemon, sig=signal.SIGKILL)
        assert (root / ".biosegment" / "daemon.lock").exists()  # the file stays ...
        assert not daemon_running(root)  # ... but nobody holds it
        with Daemon(config) as again:
            assert again.running and daemon_running(root)
            with pytest.raises(DaemonAlreadyRunning):
                Daemon(config).start()
    finally:
        stop_process(daemon)


@pytest.fixture
def live_daemon(tmp_path):
    made = []

    def start(**kwargs):
        root, config = make_folder(tmp_path, **kwargs)
        daemon = Daemon(config).start()
        made.append(daemon)
        assert daemon.watcher.wait_idle(30)
        return root, daemon

    yield start
    for daemon in made:
        daemon.stop()


def test_an_invalid_setup_json_is_reported_and_the_daemon_keeps_working(live_daemon):
    root, daemon = live_daemon(demo=False)
    setup = root / "setup.json"
    good = setup.read_text(encoding="utf-8")
    setup.write_text('{"EM_location": "EM", "datasets": [\n  {"title": oops}\n]}', encoding="utf-8")
    reported = wait_for(
        lambda: [p for p in problems(root) if "setup.json" in (p["source"] or "")], timeout=3
    )
    assert reported, problems(root)
    assert "line 2" in (reported[0]["where"] or "") or "line 2" in reported[0]["reason"]

    write_stack(root / "EM" / "after-bad-edit.tif")
    assert wait_for(lambda: datasets(root).get("after-bad-edit", {}).get("state") == "ok", 5)
    assert daemon.running

    setup.write_text(good, encoding="utf-8")
    assert wait_for(
        lambda: not [p for p in problems(root) if "setup.json" in (p["source"] or "")], timeout=3
    )


def test_auto_segment_submits_one_job_per_new_dataset(live_daemon):
    root, daemon = live_daemon(demo=False)
    setup = root / "setup.json"
    document = json.loads(setup.read_text(encoding="utf-8"))
    document["projects"] = [{"title": "Lab", "default_model": TINY_MODEL, "auto_segment": True}]
    setup.write_text(json.dumps(document), encoding="utf-8")
    assert wait_for(lambda: _project(root).get("auto_segment"), 5)

    write_stack(root / "EM" / "fresh.tif", depth=2, size=64)
    job = wait_for(lambda: _jobs_for(root, "fresh"), timeout=10)
    assert job and job[0]["params"]["model"] == TINY_MODEL
    assert job[0]["params"]["trigger"] == "auto"
    assert wait_for(lambda: job_row(root, job[0]["id"])["state"] == "succeeded", 120)
    assert (root / "segmentations" / "fresh" / TINY_MODEL / "labels.tif").is_file()

    daemon.watcher.request_rescan()
    time.sleep(1.0)
    assert daemon.watcher.wait_idle(30)
    assert len(_jobs_for(root, "fresh")) == 1, "a rescan must not segment the dataset again"


def _project(root) -> dict:
    catalog = open_catalog(root)
    try:
        return next(iter(catalog.projects()), {}) or {}
    finally:
        catalog.close()


def _jobs_for(root, dataset) -> list[dict]:
    catalog = open_catalog(root)
    try:
        return [
            j for j in catalog.jobs(kind="segment") if (j["params"] or {}).get("dataset") == dataset
        ]
    finally:
        catalog.close()


def test_periodic_rescans_run_without_any_file_event(live_daemon):
    root, daemon = live_daemon(demo=False, extra={"watch": {"rescan_minutes": 0.01}})
    before = daemon.watcher.refreshes
    assert wait_for(lambda: daemon.watcher.refreshes >= before + 2, timeout=10)


def test_polling_mode_registers_new_datasets(live_daemon):
    root, daemon = live_daemon(demo=False, extra={"watch": {"poll": True, "settle_seconds": 0.5}})
    assert daemon.watcher.poll
    write_stack(root / "EM" / "polled" / "raw" / "stack.tif")
    assert wait_for(lambda: datasets(root).get("polled", {}).get("state") == "ok", 10)


def test_housekeeping_removes_only_old_folders_of_finished_jobs(tmp_path):
    root, config = make_folder(tmp_path, demo=False)
    catalog = open_catalog(root)
    try:
        done = catalog.create_job("segment", {})
        catalog.update_job(done["id"], state="succeeded")
        running = catalog.create_job("train", {})
        catalog.claim_job(running["id"], "elsewhere:1:worker")
        for job in (done, running):
            folder = config.state_dir / "jobs" / job["id"]
            folder.mkdir(parents=True)
            (folder / "job.log").write_text("x")
        stray = config.state_dir / "jobs" / "0badc0de"
        stray.mkdir()
        cache = config.state_dir / "cache" / "tile.bin"
        cache.parent.mkdir()
        cache.write_bytes(b"x")
        soon = clean_state_folder(catalog, config.state_dir, keep_days=30)
        assert (soon.job_folders, soon.cache_files) == (0, 0)
        later = clean_state_folder(
            catalog, config.state_dir, keep_days=30, now=time.time() + 31 * 86400
        )
    finally:
        catalog.close()
    assert (later.job_folders, later.cache_files) == (2, 1)
    assert not (config.state_dir / "jobs" / done["id"]).exists()
    assert not stray.exists() and not cache.exists()
    assert (config.state_dir / "jobs" / running["id"] / "job.log").is_file()
