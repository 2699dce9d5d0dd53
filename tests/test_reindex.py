"""reindex rebuilds catalog.db from the folder; the old file is moved aside, never deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.catalog import open_catalog, refresh, reindex
from biosegment.errors import BioSegmentError

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "neuralnets"


def write_stack(path: Path, shape=(3, 16, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros(shape, np.uint8), photometric="minisblack")


@pytest.fixture
def root(tmp_path):
    """A folder holding one of everything, listed in setup.json and found by the scan."""
    checkpoint = FIXTURES / "unet2d_fm8_l3_batch.pytorch"
    if not checkpoint.is_file():
        pytest.skip(f"neuralnets fixtures not found at {FIXTURES}")
    write_stack(tmp_path / "EM" / "EPFL" / "raw" / "stack.tif")
    write_stack(tmp_path / "EM" / "loose.tif")
    (tmp_path / "models").mkdir()
    shutil.copy(checkpoint, tmp_path / "models" / "mito_2d.pytorch")
    write_stack(tmp_path / "segmentations" / "EPFL" / "auto" / "labels.tif")
    notes = tmp_path / "annotations" / "EPFL" / "scribbles"
    notes.mkdir(parents=True)
    Image.fromarray(np.full((16, 24), 255, np.uint8)).save(notes / "z00001.png")
    (tmp_path / "setup.json").write_text(
        json.dumps(
            {
                "projects": [{"title": "Main"}],
                "datasets": [{"title": "EPFL", "file_type": "tif3d"}],
                "models": [{"title": "mito 2D", "location": "models/mito_2d.pytorch"}],
            }
        )
    )
    return tmp_path


def snapshot(catalog) -> dict:
    drop = ("id", "created_at", "updated_at")
    rows = {
        "datasets": catalog.datasets(),
        "models": catalog.models(),
        "segmentations": catalog.segmentations(),
        "annotations": catalog.annotations(),
        "projects": catalog.projects(),
    }
    return {
        table: [{k: v for k, v in row.items() if k not in drop} for row in items]
        for table, items in rows.items()
    }


def test_everything_comes_back_after_catalog_db_is_deleted(root):
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        before = snapshot(catalog)
    assert len(before["datasets"]) == 2 and len(before["models"]) == 1
    assert len(before["segmentations"]) == 1 and len(before["annotations"]) == 1
    db = root / ".biosegment" / "catalog.db"
    for path in db.parent.glob("catalog.db*"):
        path.unlink()
    report = reindex(root)
    assert report.count("added") == 6
    with open_catalog(root) as catalog:
        assert snapshot(catalog) == before


def test_jobs_and_ui_rows_of_a_readable_catalog_are_kept(root):
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        job = catalog.create_job("train", {"dataset": "EPFL"})
        catalog.append_job_metrics(job["id"], {"epoch": 1, "loss": 0.5})
        catalog.upsert_project(name="Painted", origin="ui")
    report = reindex(root)
    assert any("moved to" in note for note in report.notes)
    with open_catalog(root) as catalog:
        kept = catalog.job(job["id"])
        assert kept["metrics"] == [{"epoch": 1, "loss": 0.5}] and kept["kind"] == "train"
        assert catalog.project("Painted")["origin"] == "ui"
        assert catalog.dataset("EPFL")["origin"] == "setup"
    moved = list((root / ".biosegment").glob("catalog.db.*.old"))
    assert len(moved) == 1


def test_a_corrupt_catalog_is_refused_then_moved_aside_by_reindex(root):
    db = root / ".biosegment" / "catalog.db"
    db.parent.mkdir()
    garbage = b"this is not a database" * 200
    db.write_bytes(garbage)
    with pytest.raises(BioSegmentError, match="reindex"):
        open_catalog(root)
    report = reindex(root)
    assert any("could not be read" in note for note in report.notes)
    (corrupt,) = (root / ".biosegment").glob("catalog.db.*.corrupt")
    assert corrupt.read_bytes() == garbage
    with open_catalog(root) as catalog:
        assert {d["name"] for d in catalog.datasets()} == {"EPFL", "loose"}


def test_reindex_of_a_folder_without_a_catalog(root):
    report = reindex(root)
    assert report.notes == [] and report.setup == "valid"
    with open_catalog(root) as catalog:
        assert catalog.model("mito 2D")["state"] == "ok"
