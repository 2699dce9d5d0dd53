"""The folder scan registers what the data folder holds, in every layout SPEC 2 names."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.catalog import open_catalog, refresh, scan_data_folder

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "neuralnets"


def write_stack(path: Path, shape=(3, 16, 24), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros(shape, dtype), photometric="minisblack")
    return path


def write_slices(folder: Path, count=3, suffix=".png", size=(16, 24)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(count):
        name = folder / f"slice_{z}{suffix}"
        if suffix == ".png":
            Image.fromarray(np.zeros(size, np.uint8)).save(name)
        else:
            tifffile.imwrite(name, np.zeros(size, np.uint8), photometric="minisblack")
    return folder


def checkpoint() -> Path:
    path = FIXTURES / "unet2d_fm8_l3_batch.pytorch"
    if not path.is_file():
        pytest.skip(f"neuralnets fixtures not found at {FIXTURES}")
    return path


@pytest.fixture
def catalog(tmp_path):
    with open_catalog(tmp_path) as opened:
        yield opened


def test_every_dataset_layout_is_registered(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "EPFL" / "raw" / "stack.tif", shape=(5, 16, 24))
    write_stack(tmp_path / "EM" / "EPFL" / "labels" / "gt.tif", shape=(5, 16, 24))
    write_stack(tmp_path / "EM" / "dropped.tif", shape=(2, 8, 8))
    write_slices(tmp_path / "EM" / "pngs", count=4, suffix=".png")
    write_slices(tmp_path / "EM" / "tifs" / "raw", count=2, suffix=".tif")
    report = scan_data_folder(catalog, tmp_path)
    assert report.count("added", "datasets") == 4
    rows = {d["name"]: d for d in catalog.datasets()}
    assert rows["EPFL"]["location"] == "EM/EPFL/raw/stack.tif"
    assert rows["EPFL"]["ground_truth"] == "EM/EPFL/labels/gt.tif"
    assert rows["EPFL"]["shape"] == [5, 16, 24] and rows["EPFL"]["file_type"] == "tif3d"
    assert rows["dropped"]["location"] == "EM/dropped.tif"
    assert rows["pngs"]["file_type"] == "pngseq" and rows["pngs"]["shape"] == [4, 16, 24]
    assert rows["tifs"]["location"] == "EM/tifs/raw" and rows["tifs"]["file_type"] == "tifseq"
    assert all(row["origin"] == "scan" and row["state"] == "ok" for row in rows.values())


def test_ground_truth_in_the_older_segmentations_layout(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "EPFL.tif")
    write_stack(tmp_path / "segmentations" / "EPFL" / "labels" / "labels.tif")
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("EPFL")["ground_truth"] == "segmentations/EPFL/labels/labels.tif"
    assert catalog.segmentations() == []


def test_zero_byte_and_truncated_tiffs_are_errors_naming_the_file(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "good.tif")
    (tmp_path / "EM" / "empty.tif").write_bytes(b"")
    truncated = write_stack(tmp_path / "EM" / "cut" / "raw" / "stack.tif", shape=(8, 64, 64))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    scan_data_folder(catalog, tmp_path)
    empty, cut = catalog.dataset("empty"), catalog.dataset("cut")
    assert empty["state"] == "error" and "EM/empty.tif" in empty["error"]
    assert cut["state"] == "error" and "EM/cut/raw/stack.tif" in cut["error"]
    assert catalog.dataset("good")["state"] == "ok"
    # a fixed file is probed again and recovers
    write_stack(tmp_path / "EM" / "empty.tif")
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("empty")["state"] == "ok" and catalog.dataset("empty")["error"] is None


def test_a_folder_without_images_is_an_error(tmp_path, catalog):
    (tmp_path / "EM" / "notes").mkdir(parents=True)
    (tmp_path / "EM" / "notes" / "readme.txt").write_text("hello")
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("notes")["state"] == "error"
    assert "no image files" in catalog.dataset("notes")["error"]


def test_unicode_and_spaces_in_names(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "Mäuse Hirn 2024" / "raw" / "schnitt 1.tif")
    write_stack(tmp_path / "EM" / "細胞 stack.tif")
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("Mäuse Hirn 2024")["location"] == "EM/Mäuse Hirn 2024/raw/schnitt 1.tif"
    assert catalog.dataset("細胞 stack")["state"] == "ok"


def test_deleted_data_is_marked_missing_and_comes_back(tmp_path, catalog):
    stack = write_stack(tmp_path / "EM" / "EPFL.tif")
    scan_data_folder(catalog, tmp_path)
    moved = tmp_path / "aside.tif"
    stack.rename(moved)
    report = scan_data_folder(catalog, tmp_path)
    assert report.count("missing", "datasets") == 1
    assert catalog.dataset("EPFL")["state"] == "missing"
    moved.rename(stack)
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("EPFL")["state"] == "ok" and catalog.dataset("EPFL")["error"] is None


def test_temporary_names_and_our_own_folder_are_ignored(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "real.tif")
    write_stack(tmp_path / "EM" / ".hidden.tif")
    (tmp_path / "EM" / "copying.tif.part").write_bytes(b"II*\x00")
    (tmp_path / "EM" / "~lock.tif").write_bytes(b"")
    write_stack(tmp_path / ".biosegment" / "cache" / "x.tif")
    scan_data_folder(catalog, tmp_path)
    assert [d["name"] for d in catalog.datasets()] == ["real"]


def test_a_second_scan_changes_nothing(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "a.tif")
    write_slices(tmp_path / "EM" / "b")
    (tmp_path / "EM" / "bad.tif").write_bytes(b"")
    scan_data_folder(catalog, tmp_path)
    before = catalog.datasets(), catalog.problems()
    report = scan_data_folder(catalog, tmp_path)
    assert not report.changed
    assert (catalog.datasets(), catalog.problems()) == before


def test_a_changed_file_is_probed_again(tmp_path, catalog):
    stack = write_stack(tmp_path / "EM" / "a.tif", shape=(3, 16, 16))
    scan_data_folder(catalog, tmp_path)
    write_stack(stack, shape=(7, 16, 16))
    os.utime(stack, ns=(stack.stat().st_atime_ns, stack.stat().st_mtime_ns + 10**9))
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("a")["shape"] == [7, 16, 16]


def test_a_name_used_twice_is_a_problem_and_the_first_wins(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "twin" / "raw" / "a.tif")
    write_stack(tmp_path / "EM" / "twin.tif")
    scan_data_folder(catalog, tmp_path)
    assert catalog.dataset("twin")["location"] == "EM/twin/raw/a.tif"
    problem = catalog.problems("scan")[0]
    assert problem["source"] == "EM/twin.tif" and "twin" in problem["reason"]


def test_models_in_both_layouts_and_a_broken_one(tmp_path, catalog):
    source = checkpoint()
    (tmp_path / "models" / "tuned").mkdir(parents=True)
    shutil.copy(source, tmp_path / "models" / "tuned" / "model.pytorch")
    (tmp_path / "models" / "tuned" / "model.json").write_text(
        json.dumps(
            {
                "name": "tuned",
                "classes": [
                    {"id": 0, "name": "bg"},
                    {"id": 1, "name": "mito"},
                    {"id": 2, "name": "er"},
                ],
                "parent": "models/legacy.pytorch",
                "metrics": [{"epoch": 1, "loss": 0.4}],
            }
        )
    )
    shutil.copy(source, tmp_path / "models" / "legacy.pytorch")
    (tmp_path / "models" / "broken.pytorch").write_bytes(b"not a checkpoint")
    (tmp_path / "models" / "empty folder").mkdir()
    scan_data_folder(catalog, tmp_path)
    models = {m["name"]: m for m in catalog.models()}
    assert set(models) == {"tuned", "legacy", "broken"}
    assert models["tuned"]["location"] == "models/tuned/model.pytorch"
    assert models["tuned"]["classes"][1]["name"] == "mito"
    assert models["tuned"]["parent"] == "models/legacy.pytorch"
    assert models["tuned"]["metrics"] == [{"epoch": 1, "loss": 0.4}]
    assert models["legacy"]["architecture"]["num_classes"] == 3
    assert models["legacy"]["architecture"]["norm"] == "batch"
    assert models["broken"]["state"] == "error"
    assert "models/broken.pytorch" in models["broken"]["error"]


def test_segmentations_and_annotations_are_registered(tmp_path, catalog):
    write_stack(tmp_path / "EM" / "EPFL.tif")
    seg = tmp_path / "segmentations" / "EPFL" / "auto"
    write_stack(seg / "labels.tif")
    (seg / "segmentation.json").write_text(json.dumps({"model": "mito 2D"}))
    write_slices(tmp_path / "segmentations" / "EPFL" / "old style")
    (tmp_path / "segmentations" / "EPFL" / "half written").mkdir()
    (tmp_path / "segmentations" / "EPFL" / "half written" / ".labels.tif.123.part").write_bytes(
        b"x"
    )
    notes = tmp_path / "annotations" / "EPFL" / "scribbles"
    notes.mkdir(parents=True)
    for z in (3, 12):
        Image.fromarray(np.full((16, 24), 255, np.uint8)).save(notes / f"z{z:05d}.png")
    (notes / "annotation.json").write_text(json.dumps({"classes": [{"id": 1, "name": "mito"}]}))
    scan_data_folder(catalog, tmp_path)
    segs = {s["name"]: s for s in catalog.segmentations("EPFL")}
    assert set(segs) == {"auto", "old style"}
    assert segs["auto"]["location"] == "segmentations/EPFL/auto/labels.tif"
    assert segs["auto"]["model"] == "mito 2D" and segs["auto"]["state"] == "ok"
    annotation = catalog.annotation("EPFL", "scribbles")
    assert annotation["slices"] == [3, 12]
    assert annotation["classes"] == [{"id": 1, "name": "mito"}]
    shutil.rmtree(seg)
    scan_data_folder(catalog, tmp_path)
    assert catalog.segmentation("EPFL", "auto")["state"] == "missing"


def test_ui_rows_get_fresh_facts_and_are_marked_missing_only_once_seen(tmp_path, catalog):
    catalog.upsert_segmentation(
        dataset="EPFL",
        name="pending",
        origin="ui",
        location="segmentations/EPFL/pending/labels.tif",
    )
    scan_data_folder(catalog, tmp_path)
    assert catalog.segmentation("EPFL", "pending")["state"] == "ok"  # not written yet
    labels = write_stack(tmp_path / "segmentations" / "EPFL" / "pending" / "labels.tif")
    scan_data_folder(catalog, tmp_path)
    row = catalog.segmentation("EPFL", "pending")
    assert row["origin"] == "ui" and row["fingerprint"]
    labels.unlink()
    scan_data_folder(catalog, tmp_path)
    assert catalog.segmentation("EPFL", "pending")["state"] == "missing"


def test_two_hundred_datasets_refresh_and_rescan_quickly(tmp_path, catalog):
    for n in range(200):
        write_stack(tmp_path / "EM" / f"ds{n:03d}.tif", shape=(2, 8, 8))
    report = refresh(catalog, tmp_path)
    assert report.count("added", "datasets") == 200
    again = refresh(catalog, tmp_path)
    assert not again.changed and again.count("unchanged", "datasets") == 200
    assert len(catalog.datasets()) == 200


def test_symlinks_that_leave_the_data_folder_are_problems_not_rows(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_stack(outside / "secret" / "raw" / "stack.tif")
    write_stack(outside / "labels.tif")
    Image.fromarray(np.full((16, 24), 255, np.uint8)).save(outside / "z00001.png")
    write_stack(root / "EM" / "fine.tif")
    (root / "EM" / "secret").symlink_to(outside / "secret", target_is_directory=True)
    (root / "segmentations" / "fine" / "auto").mkdir(parents=True)
    (root / "segmentations" / "fine" / "auto" / "labels.tif").symlink_to(outside / "labels.tif")
    (root / "annotations" / "fine").mkdir(parents=True)
    (root / "annotations" / "fine" / "away").symlink_to(outside, target_is_directory=True)
    (root / "models").symlink_to(outside, target_is_directory=True)
    with open_catalog(root) as catalog:
        scan_data_folder(catalog, root)
        assert [d["name"] for d in catalog.datasets()] == ["fine"]
        assert catalog.segmentations() == [] and catalog.annotations() == []
        sources = {p["source"] for p in catalog.problems("scan")}
    assert sources == {
        "EM/secret",
        "segmentations/fine/auto/labels.tif",
        "annotations/fine/away",
        "models",
    }


def _full_folder(root: Path, *, with_model: bool = True) -> None:
    """One of everything: setup.json, every dataset layout, models, outputs, old annotations."""
    write_stack(root / "EM" / "EPFL" / "raw" / "stack.tif")
    write_stack(root / "EM" / "EPFL" / "labels" / "gt.tif")
    write_stack(root / "EM" / "loose.tif")
    write_slices(root / "EM" / "slices")
    (root / "EM" / "broken.tif").write_bytes(b"")
    (root / "models").mkdir()
    if with_model:
        shutil.copy(checkpoint(), root / "models" / "mito_2d.pytorch")
    write_stack(root / "segmentations" / "EPFL" / "auto" / "labels.tif")
    legacy = root / "annotations" / "EPFL" / "old"
    legacy.mkdir(parents=True)
    (legacy / "annotations.json").write_text(
        json.dumps(
            {"1": [{"type": "path", "path": "M1,1L9,1", "line": {"color": "#00FE35", "width": 3}}]}
        )
    )
    (root / "setup.json").write_text(
        json.dumps(
            {
                "projects": [{"title": "Main"}],
                "datasets": [{"title": "EPFL", "file_type": "tif3d"}],
                "models": [{"title": "mito 2D", "location": "models/mito_2d.pytorch"}],
            }
        )
    )


def _everything(catalog) -> tuple:
    return (
        catalog.datasets(),
        catalog.models(),
        catalog.segmentations(),
        catalog.annotations(),
        catalog.projects(),
        catalog.problems(),
    )


def test_a_second_refresh_of_a_full_folder_changes_nothing(tmp_path, catalog):
    _full_folder(tmp_path)
    refresh(catalog, tmp_path)
    before = _everything(catalog)
    assert catalog.annotation("EPFL", "old")["slices"] == [1]
    report = refresh(catalog, tmp_path)
    assert not report.changed
    assert _everything(catalog) == before  # timestamps included


def _refresh_in_process(root, start):
    with open_catalog(root) as catalog:
        start.wait(10)
        for _ in range(3):
            refresh(catalog, root)


def test_processes_refreshing_the_same_folder_at_once_agree(tmp_path):
    import multiprocessing

    # No model here: the point is the catalog's writes, and loading torch in two fresh
    # processes would only make the test slow. Spawn, not fork: the test process may hold
    # torch's thread pool from earlier tests, which a forked child can deadlock on.
    _full_folder(tmp_path, with_model=False)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=_refresh_in_process, args=(tmp_path, start)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with open_catalog(tmp_path) as catalog:
        assert {d["name"] for d in catalog.datasets()} == {"EPFL", "loose", "slices", "broken"}
        assert [m["name"] for m in catalog.models()] == ["mito 2D"]
        assert catalog.model("mito 2D")["state"] == "missing"
        assert len(catalog.segmentations()) == 1 and len(catalog.annotations()) == 1
        assert not refresh(catalog, tmp_path).changed


def test_the_isbi_stack_with_its_labels_is_registered_from_headers(tmp_path, catalog, isbi_dir):
    raw = tmp_path / "EM" / "isbi2012" / "raw"
    labels = tmp_path / "EM" / "isbi2012" / "labels"
    raw.mkdir(parents=True)
    labels.mkdir()
    shutil.copy(isbi_dir / "train-volume.tif", raw / "train-volume.tif")
    shutil.copy(isbi_dir / "train-labels.tif", labels / "train-labels.tif")
    scan_data_folder(catalog, tmp_path)
    row = catalog.dataset("isbi2012")
    assert row["shape"] == [30, 512, 512] and row["dtype"] == "uint8"
    assert row["file_type"] == "tif3d" and row["state"] == "ok"
    assert row["ground_truth"] == "EM/isbi2012/labels/train-labels.tif"
