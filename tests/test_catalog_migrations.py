"""The catalog schema migrates forward in order, keeps old rows, and refuses newer files."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from biosegment.catalog import open_catalog
from biosegment.catalog.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from biosegment.errors import BioSegmentError


def _old_catalog(root, version):
    """A catalog.db as an older BioSegment left it: migrated only up to ``version``."""
    folder = root / ".biosegment"
    folder.mkdir()
    conn = sqlite3.connect(folder / "catalog.db", isolation_level=None)
    migrate(conn, target=version)
    return conn


def test_versions_are_numbered_in_order():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == MIGRATIONS[-1].version


def test_an_older_catalog_is_migrated_and_keeps_its_rows(tmp_path):
    conn = _old_catalog(tmp_path, 1)
    conn.execute(
        "INSERT INTO datasets (name, location, state, origin, created_at, updated_at) "
        "VALUES ('EPFL', 'EM/EPFL/raw/v.tif', 'ok', 'ui', 't0', 't0')"
    )
    assert schema_version(conn) == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "jobs" not in tables and "problems" not in tables
    conn.close()

    with open_catalog(tmp_path) as catalog:
        assert catalog.dataset("EPFL")["location"] == "EM/EPFL/raw/v.tif"
        assert catalog.create_job("segment", {"dataset": "EPFL"})["state"] == "queued"
        catalog.set_problems("scan", [{"source": "EM/x.tif", "reason": "empty"}])
    conn = sqlite3.connect(tmp_path / ".biosegment" / "catalog.db")
    applied = [r[0] for r in conn.execute("SELECT version FROM migrations ORDER BY version")]
    assert applied == list(range(1, LATEST_VERSION + 1))


def test_opening_again_applies_nothing_twice(tmp_path):
    open_catalog(tmp_path).close()
    open_catalog(tmp_path).close()
    conn = sqlite3.connect(tmp_path / ".biosegment" / "catalog.db")
    (count,) = conn.execute("SELECT COUNT(*) FROM migrations").fetchone()
    assert count == LATEST_VERSION


def test_a_catalog_from_a_newer_biosegment_is_refused_untouched(tmp_path):
    conn = _old_catalog(tmp_path, LATEST_VERSION)
    conn.execute("INSERT INTO migrations VALUES (?, 'from the future', 't')", (LATEST_VERSION + 1,))
    conn.close()
    with pytest.raises(BioSegmentError, match="newer BioSegment"):
        open_catalog(tmp_path)
    conn = sqlite3.connect(tmp_path / ".biosegment" / "catalog.db")
    assert schema_version(conn) == LATEST_VERSION + 1


def _open_and_close(root):
    open_catalog(root).close()


def test_processes_opening_a_new_folder_together_migrate_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_and_close, args=(tmp_path,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    conn = sqlite3.connect(tmp_path / ".biosegment" / "catalog.db")
    versions = [r[0] for r in conn.execute("SELECT version FROM migrations")]
    assert sorted(versions) == list(range(1, LATEST_VERSION + 1))


def test_unfinished_train_jobs_keep_their_model_names_through_the_migration(tmp_path):
    """Jobs queued before names were held: the oldest unfinished job of a name holds it."""
    conn = _old_catalog(tmp_path, 3)
    jobs = [
        ("older", "train", '{"name": "shared"}', "running"),
        ("newer", "train", '{"name": "shared"}', "queued"),
        ("done", "train", '{"name": "finished"}', "succeeded"),
        ("own", "train", '{"name": "own"}', "queued"),
        ("cut", "segment", '{"name": "labels"}', "queued"),
        ("odd", "train", "{not json", "queued"),
    ]
    for number, (job_id, kind, params, state) in enumerate(jobs):
        conn.execute(
            "INSERT INTO jobs (id, kind, params, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, kind, params, state, f"t{number}", f"t{number}"),
        )
    conn.close()

    with open_catalog(tmp_path) as catalog:
        held = {job_id: catalog.job(job_id)["model_name"] for job_id in ("older", "newer", "own")}
        assert held == {"older": "shared", "newer": None, "own": "own"}
        assert catalog.reserved_model_names() == {"shared", "own"}
        assert catalog.job("older")["crashes"] == 0 and catalog.job("older")["decision"] is None
        # the name ends with the job that holds it
        catalog.update_job("older", state="failed", message="stopped")
        assert catalog.reserved_model_names() == {"own"}
        assert catalog.create_job("train", {"name": "shared"}, model_name="shared")["model_name"]
