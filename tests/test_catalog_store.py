"""The catalog's rows: upserts, lookups, missing marks, origins, problems and counts."""

from __future__ import annotations

import sqlite3

import pytest

from biosegment.catalog import open_catalog
from biosegment.errors import NotFoundError, SetupError


@pytest.fixture
def catalog(tmp_path):
    with open_catalog(tmp_path) as opened:
        yield opened


def test_open_catalog_creates_the_database_in_wal_mode(tmp_path):
    with open_catalog(tmp_path) as catalog:
        assert catalog.root == tmp_path
        assert catalog.path == tmp_path / ".biosegment" / "catalog.db"
    conn = sqlite3.connect(tmp_path / ".biosegment" / "catalog.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "projects",
        "datasets",
        "models",
        "segmentations",
        "annotations",
        "jobs",
        "problems",
        "migrations",
    } <= tables


def test_open_catalog_refuses_a_folder_that_does_not_exist(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        open_catalog(tmp_path / "nowhere")


def test_upserted_dataset_reads_back_with_decoded_columns(catalog):
    row = catalog.upsert_dataset(
        name="EPFL",
        location="EM/EPFL/raw/v.tif",
        shape=(30, 512, 256),
        dtype="uint8",
        voxel_size=(5.0, 5.0, 5.0),
        resolution=[256, 512, 30],
        origin="scan",
    )
    assert row["shape"] == [30, 512, 256]
    assert row["voxel_size"] == [5.0, 5.0, 5.0]
    assert row["resolution"] == [256, 512, 30]
    assert row["state"] == "ok" and row["origin"] == "scan"
    assert catalog.dataset("EPFL") == row
    assert [d["name"] for d in catalog.datasets()] == ["EPFL"]


def test_unknown_rows_raise_not_found_naming_them(catalog):
    with pytest.raises(NotFoundError, match="EPFL"):
        catalog.dataset("EPFL")
    with pytest.raises(NotFoundError, match="EPFL/auto"):
        catalog.segmentation("EPFL", "auto")
    with pytest.raises(NotFoundError):
        catalog.model("nope")


def test_unknown_column_is_rejected_naming_it(catalog):
    with pytest.raises(ValueError, match="colour"):
        catalog.upsert_dataset(name="x", colour="red")
    with pytest.raises(ValueError, match="state"):
        catalog.upsert_dataset(name="x", state="broken")


def test_an_upsert_that_changes_nothing_writes_nothing(catalog):
    first = catalog.upsert_model(name="m", location="models/m.pytorch", classes=[{"id": 1}])
    again = catalog.upsert_model(name="m", location="models/m.pytorch", classes=[{"id": 1}])
    assert again["updated_at"] == first["updated_at"]
    changed = catalog.upsert_model(name="m", metrics=[{"epoch": 1, "loss": 0.5}])
    assert changed["metrics"] == [{"epoch": 1, "loss": 0.5}]
    assert changed["location"] == "models/m.pytorch"  # columns not given are kept


def test_upsert_many_counts_what_it_did(catalog):
    catalog.upsert_dataset(name="a", location="EM/a")
    counts = catalog.upsert_many(
        "datasets",
        [
            {"name": "a", "location": "EM/a"},
            {"name": "b", "location": "EM/b"},
            {"name": "a", "location": "EM/a2"},
        ],
    )
    assert counts == {"added": 1, "unchanged": 1, "updated": 1}


def test_origin_only_rises_so_ui_rows_are_never_taken_over(catalog):
    catalog.upsert_annotation(dataset="EPFL", name="mine", location="annotations/EPFL/mine")
    row = catalog.upsert_annotation(dataset="EPFL", name="mine", origin="scan", slices=[3])
    assert row["origin"] == "ui" and row["slices"] == [3]
    catalog.upsert_dataset(name="d", origin="scan")
    assert catalog.upsert_dataset(name="d", origin="setup")["origin"] == "setup"
    assert catalog.upsert_dataset(name="d", origin="scan")["origin"] == "setup"


def test_mark_missing_keeps_the_row_and_an_upsert_brings_it_back(catalog):
    catalog.upsert_segmentation(dataset="EPFL", name="auto", location="segmentations/EPFL/auto")
    row = catalog.mark_missing("segmentations", "auto", dataset="EPFL")
    assert row["state"] == "missing"
    assert catalog.segmentations(include_missing=False) == []
    assert catalog.segmentations("EPFL")[0]["state"] == "missing"
    assert catalog.upsert_segmentation(dataset="EPFL", name="auto", state="ok")["state"] == "ok"
    with pytest.raises(ValueError, match="dataset"):
        catalog.mark_missing("segmentations", "auto")


def test_rows_of_one_dataset_are_listed_apart(catalog):
    catalog.upsert_annotation(dataset="A", name="x", classes=[{"id": 1, "name": "mito"}])
    catalog.upsert_annotation(dataset="B", name="x")
    assert [a["dataset"] for a in catalog.annotations()] == ["A", "B"]
    only_a = catalog.annotations("A")
    assert len(only_a) == 1 and only_a[0]["classes"] == [{"id": 1, "name": "mito"}]


def test_set_problems_replaces_those_of_one_reporter_and_keeps_repeats(catalog):
    catalog.set_problems("setup.json", [SetupError("bad", source="setup.json", where="line 2")])
    catalog.set_problems("scan", [{"source": "EM/x.tif", "reason": "empty file"}])
    first = catalog.problems("setup.json")
    catalog.set_problems(
        "setup.json",
        [
            SetupError("bad", source="setup.json", where="line 2"),
            {"reason": "also this", "where": "datasets[0]"},
        ],
    )
    again = catalog.problems("setup.json")
    assert [p["reason"] for p in again] == ["bad", "also this"]
    assert again[0]["created_at"] == first[0]["created_at"] and again[0]["id"] == first[0]["id"]
    assert again[1]["source"] == "setup.json" and again[1]["where"] == "datasets[0]"
    catalog.set_problems("setup.json", [])
    assert [p["source"] for p in catalog.problems()] == ["EM/x.tif"]


def test_counts_by_state(catalog):
    catalog.upsert_dataset(name="a")
    catalog.upsert_dataset(name="b", state="error", error="EM/b.tif: empty")
    catalog.upsert_dataset(name="c")
    catalog.mark_missing("datasets", "c")
    catalog.create_job("segment", {})
    counts = catalog.counts()
    assert counts["datasets"] == {"ok": 1, "missing": 1, "error": 1, "total": 3}
    assert counts["jobs"]["queued"] == 1 and counts["jobs"]["total"] == 1
    assert counts["models"]["total"] == 0 and counts["problems"]["total"] == 0


def test_projects_keep_classes_and_switches(catalog):
    catalog.upsert_project(
        name="Main",
        classes=[{"id": 1, "name": "mito", "color": "#00c0ff"}],
        default_model="mito 2D",
        auto_segment=True,
    )
    project = catalog.project("Main")
    assert project["auto_segment"] is True
    assert project["classes"][0]["name"] == "mito"
    assert [p["name"] for p in catalog.projects()] == ["Main"]
