"""`biosegment doctor`: a corrupt or missing catalog.db or queue.db is detected and rebuilt from
the data folder, with every dataset, model, segmentation and annotation back, readable jobs
salvaged, waiting jobs back on the queue, and the damaged files kept beside the new ones.

Everything runs for real: a data folder made by `init --demo`, a saved model, annotation and
segmentation files, SQLite files damaged on disk, and the `biosegment` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.catalog import open_catalog, refresh
from biosegment.config import load_config
from biosegment.daemon import Daemon
from biosegment.datafolder import DEMO_DATASET, init_data_folder
from biosegment.errors import NotFoundError
from biosegment.folder_lock import acquire_daemon_lock
from webui_fixtures import make_tiny_model


def biosegment(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BIOSEGMENT_CONFIG", "BIOSEGMENT_DATA", "ROOT_DATA_FOLDER")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "biosegment", "--data", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"biosegment {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def add_annotation(root: Path, name: str) -> None:
    folder = root / "annotations" / DEMO_DATASET / name
    folder.mkdir(parents=True)
    (folder / "annotation.json").write_text(
        json.dumps(
            {
                "dataset": DEMO_DATASET,
                "name": name,
                "author": "test",
                "classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}],
            }
        )
    )
    labels = np.full((512, 512), 255, np.uint8)
    labels[100:120, 100:300] = 1
    Image.fromarray(labels).save(folder / "z00002.png")


def add_segmentation(root: Path, name: str, model: str) -> None:
    folder = root / "segmentations" / DEMO_DATASET / name
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "labels.tif", np.zeros((5, 512, 512), np.uint8))
    (folder / "segmentation.json").write_text(json.dumps({"model": model, "dataset": DEMO_DATASET}))


def catalog_names(root: Path) -> dict[str, set]:
    with open_catalog(root) as catalog:
        return {
            "datasets": {d["name"] for d in catalog.datasets()},
            "models": {m["name"] for m in catalog.models()},
            "segmentations": {(s["dataset"], s["name"]) for s in catalog.segmentations()},
            "annotations": {(a["dataset"], a["name"]) for a in catalog.annotations()},
            "jobs": {j["id"]: j["state"] for j in catalog.jobs(limit=1000)},
        }


@pytest.fixture(scope="module")
def template_folder(tmp_path_factory) -> Path:
    """A data folder with a dataset, a model, a segmentation, two annotations and jobs."""
    root = tmp_path_factory.mktemp("doctor") / "data"
    init_data_folder(root, demo=True)
    make_tiny_model(root, "tiny-membrane")
    add_annotation(root, "mito scribbles")
    add_annotation(root, "membranes")
    add_segmentation(root, "first pass", "tiny-membrane")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        done = catalog.create_job("segment", {"dataset": DEMO_DATASET, "model": "tiny-membrane"})
        catalog.update_job(done["id"], state="succeeded", progress=1.0)
        for _ in range(2):
            catalog.create_job("segment", {"dataset": DEMO_DATASET, "model": "tiny-membrane"})
    # Jobs queued an hour ago: recovery leaves fresh rows alone (their submitter may be about
    # to enqueue them), and a queue found broken holds jobs from before it broke.
    conn = sqlite3.connect(root / ".biosegment" / "catalog.db")
    with conn:
        conn.execute(
            "UPDATE jobs SET created_at = ?, updated_at = ?", ("2026-01-01T10:00:00.000+00:00",) * 2
        )
    conn.close()
    checkpoint(root / ".biosegment" / "catalog.db")
    return root


@pytest.fixture
def folder(template_folder, tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(template_folder, root, symlinks=True)
    return root


def checkpoint(path: Path) -> None:
    """Fold the WAL into the main file, so damage to the file is damage to the data."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def table_page(path: Path, table: str) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (root_page,) = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
    ).fetchone()
    conn.close()
    return page_size, root_page


def smash_page(path: Path, table: str) -> None:
    """Overwrite the page that holds ``table``'s rows with noise, as a bad disk sector would."""
    page_size, root_page = table_page(path, table)
    noise = np.random.default_rng(7).integers(0, 256, page_size, dtype=np.uint8).tobytes()
    with open(path, "r+b") as handle:
        handle.seek((root_page - 1) * page_size)
        handle.write(noise)


def smash_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"this is no longer a SQLite file" * 4)


def test_a_catalog_with_a_smashed_datasets_page_is_rebuilt_with_everything(folder):
    before = catalog_names(folder)
    assert len(before["jobs"]) == 3 and before["annotations"] and before["segmentations"]
    catalog_db = folder / ".biosegment" / "catalog.db"
    smash_page(catalog_db, "datasets")
    with pytest.raises(sqlite3.DatabaseError):
        catalog_names(folder)  # the damage is real: reading the datasets fails

    report = json.loads(biosegment(folder, "doctor", "--json").stdout)

    finding = next(f for f in report["findings"] if f["subject"] == "catalog")
    assert finding["state"] == "repaired" and report["healthy"]
    after = catalog_names(folder)
    for kind in ("datasets", "models", "segmentations", "annotations"):
        assert after[kind] == before[kind], kind
    assert after["jobs"] == before["jobs"], "the jobs table was intact and must be salvaged"
    assert finding["recovered"]["jobs_salvaged"] == 3
    assert finding["recovered"]["annotations"] == 2
    kept = Path(finding["moved_aside"])
    assert kept.parent == catalog_db.parent and kept.name.endswith(".corrupt") and kept.is_file()


def test_a_catalog_that_is_not_a_database_any_more_is_rebuilt(folder):
    before = catalog_names(folder)
    smash_header(folder / ".biosegment" / "catalog.db")
    proc = biosegment(folder, "doctor")
    assert "catalog  REPAIRED" in proc.stdout and "Healthy." in proc.stdout
    after = catalog_names(folder)
    for kind in ("datasets", "models", "segmentations", "annotations"):
        assert after[kind] == before[kind], kind


def test_check_only_reports_and_touches_nothing(folder):
    catalog_db = folder / ".biosegment" / "catalog.db"
    smash_header(catalog_db)
    damaged = catalog_db.read_bytes()
    listing = sorted(p.name for p in catalog_db.parent.iterdir())
    proc = biosegment(folder, "doctor", "--check", check=False)
    assert proc.returncode == 1
    assert "catalog  PROBLEM" in proc.stdout and "not a database" in proc.stdout
    assert catalog_db.read_bytes() == damaged
    assert sorted(p.name for p in catalog_db.parent.iterdir()) == listing


def queued_on_queue(root: Path) -> set[str]:
    from biosegment.tasks.queue import make_huey, pending_job_messages

    huey = make_huey(load_config(data_dir=root, env={}, cwd=root))
    try:
        return {args[0] for kind, args in pending_job_messages(huey) if kind == "run_job"}
    finally:
        huey.storage.close()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_lost_queue_is_recreated_with_every_waiting_job(folder, damage):
    waiting = {job for job, state in catalog_names(folder)["jobs"].items() if state == "queued"}
    assert len(waiting) == 2
    queue_db = folder / ".biosegment" / "queue.db"
    if damage == "missing":
        queue_db.unlink(missing_ok=True)
    else:
        queue_db.write_bytes(b"\x00garbage" * 512)

    report = json.loads(biosegment(folder, "doctor", "--json").stdout)

    finding = next(f for f in report["findings"] if f["subject"] == "queue")
    assert finding["state"] == "repaired", finding
    assert set(finding["recovered"]["enqueued"]) == waiting
    assert queued_on_queue(folder) == waiting
    if damage == "corrupt":
        assert Path(finding["moved_aside"]).read_bytes() == b"\x00garbage" * 512
    # A second run finds nothing left to do.
    again = json.loads(biosegment(folder, "doctor", "--json").stdout)
    assert {f["state"] for f in again["findings"]} == {"ok"}


def test_a_job_whose_runner_died_under_it_once_before_is_failed_and_named(folder):
    with open_catalog(folder) as catalog:
        job = catalog.create_job("segment", {"dataset": DEMO_DATASET})
        # as a second crash leaves it: running, its runner gone, one crash counted already
        catalog.update_job(job["id"], state="running", worker="gone:1:daemon", crashes=1)

    report = json.loads(biosegment(folder, "doctor", "--json").stdout)

    finding = next(f for f in report["findings"] if f["subject"] == "queue")
    assert finding["state"] == "repaired", finding
    assert finding["recovered"]["failed"] == [job["id"]]
    assert "failed 1 job(s) whose runner stopped under them 2 times" in finding["detail"]
    with open_catalog(folder) as catalog:
        row = catalog.job(job["id"])
    assert row["state"] == "failed" and "not retried" in row["message"]


def test_doctor_only_reports_while_a_daemon_holds_the_folder(folder):
    catalog_db = folder / ".biosegment" / "catalog.db"
    smash_header(catalog_db)
    damaged = catalog_db.read_bytes()
    lock = acquire_daemon_lock(folder, role="daemon")
    try:
        proc = biosegment(folder, "doctor", check=False)
    finally:
        lock.release()
    assert proc.returncode == 1  # the damaged catalog is still broken ...
    assert "catalog  PROBLEM" in proc.stdout
    # ... while the daemon itself is how a folder is meant to be used
    assert "daemon   ok" in proc.stdout and "stop them" in proc.stdout
    assert catalog_db.read_bytes() == damaged


def truncated_stack(path: Path) -> None:
    """A TIFF cut off half way, as a copy that stopped early leaves it."""
    tifffile.imwrite(
        path,
        np.random.default_rng(3).integers(0, 255, (4, 64, 64), dtype=np.uint8),
        photometric="minisblack",
    )
    os.truncate(path, path.stat().st_size // 2)


def test_beside_a_running_daemon_doctor_names_the_truncated_tiff_and_nothing_else(tmp_path):
    root = init_data_folder(tmp_path / "data", demo=True, write_config=False).root
    with Daemon(load_config(data_dir=root, env={}, cwd=root)) as daemon:
        assert daemon.watcher.wait_idle(30)
        healthy = biosegment(root, "doctor", check=False)
        assert healthy.returncode == 0, healthy.stdout
        assert "daemon   ok" in healthy.stdout and "pid" in healthy.stdout
        assert "PROBLEM" not in healthy.stdout and "Healthy." in healthy.stdout

        truncated_stack(root / "EM" / "cut.tif")
        assert daemon.watcher.wait_idle(30)
        with open_catalog(root) as catalog:
            assert wait_until(lambda: catalog.dataset("cut")["state"] == "error")
        proc = biosegment(root, "doctor", check=False)
        report = json.loads(biosegment(root, "doctor", "--json", check=False).stdout)
    assert proc.returncode == 1, proc.stdout
    marks = {f["subject"]: f["state"] for f in report["findings"]}
    assert marks["daemon"] == "ok" and marks["catalog"] == "ok" and marks["data"] == "problem"
    assert [k for k, v in marks.items() if v == "problem"] == ["data"]
    (line,) = next(f for f in report["findings"] if f["subject"] == "data")["problems"]
    assert line.startswith("dataset cut: EM/cut.tif: truncated"), line
    assert "data     PROBLEM" in proc.stdout and "EM/cut.tif: truncated" in proc.stdout
    assert "daemon   PROBLEM" not in proc.stdout


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except NotFoundError:
            pass
        time.sleep(0.05)
    return False


def test_missing_layout_folders_come_back_empty(folder):
    shutil.rmtree(folder / "segmentations")
    proc = biosegment(folder, "doctor", "--json", check=False)
    report = json.loads(proc.stdout)
    finding = next(f for f in report["findings"] if f["subject"] == "layout")
    assert finding["state"] == "repaired" and finding["recovered"]["folders"] == ["segmentations"]
    assert (folder / "segmentations").is_dir() and (folder / "EM" / DEMO_DATASET).exists()
    # the segmentation that was in it is lost, and named: only its owner can make it again
    data = next(f for f in report["findings"] if f["subject"] == "data")
    assert data["problems"] == [
        f"segmentation {DEMO_DATASET}/first pass: no longer in the data folder"
    ]
    assert proc.returncode == 1


def add_people(root: Path) -> None:
    from biosegment.accounts import open_accounts

    with open_accounts(root) as accounts:
        accounts.add_user("ada", "admin", "a long enough password")
        accounts.add_user("vic", "viewer", "another long password")
        accounts.create_token("vic", "nightly")
        for n in range(200):  # enough audit rows to fill pages of their own
            accounts.record("ada", "job.segment", target=f"job{n}", detail={"n": n})
    checkpoint(root / ".biosegment-accounts" / "accounts.db")


def test_a_damaged_accounts_database_gives_back_its_people_and_tokens(folder):
    from biosegment.accounts import open_accounts

    add_people(folder)
    accounts_db = folder / ".biosegment-accounts" / "accounts.db"
    smash_page(accounts_db, "sessions")
    report = json.loads(biosegment(folder, "doctor", "--json").stdout)
    finding = next(f for f in report["findings"] if f["subject"] == "accounts")
    assert finding["state"] == "repaired", finding
    assert finding["recovered"]["users"] == 2 and finding["recovered"]["api_tokens"] == 1
    assert finding["recovered"]["audit"] == 200
    with open_accounts(folder) as accounts:
        user, _ = accounts.authenticate("ada", "a long enough password")
        assert user is not None and user["role"] == "admin"
        assert [t["user"] for t in accounts.tokens()] == ["vic"]
    assert Path(finding["moved_aside"]).is_file()


def test_an_accounts_database_with_nothing_left_says_how_to_get_back_in(folder):
    add_people(folder)
    smash_header(folder / ".biosegment-accounts" / "accounts.db")
    proc = biosegment(folder, "doctor", check=False)
    assert proc.returncode == 1
    assert "accounts PROBLEM" in proc.stdout and "users add NAME --role admin" in proc.stdout


def test_a_secrets_file_others_can_read_is_made_private(folder):
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text('session_key = "' + "k" * 64 + '"\n')
    secrets_file.chmod(0o644)
    report = json.loads(biosegment(folder, "doctor", "--json").stdout)
    finding = next(f for f in report["findings"] if f["subject"] == "secrets")
    assert finding["state"] == "repaired" and oct(secrets_file.stat().st_mode & 0o777) == "0o600"
