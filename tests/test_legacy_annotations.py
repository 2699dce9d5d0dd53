"""The old stack's annotations.json (Plotly shapes) becomes per-slice PNG annotations on sight."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.catalog import open_catalog, refresh
from biosegment.catalog.legacy_annotations import rasterise_shapes

RED, GREEN, BLUE = "#FD3216", "#00FE35", "#6A76FC"


def stroke(path: str, color: str, width: float = 3) -> dict:
    return {
        "type": "path",
        "path": path,
        "line": {"color": color, "width": width},
        "editable": True,
        "xref": "x",
        "yref": "y",
    }


def write_dataset(root: Path, name="EPFL", shape=(20, 40, 60)) -> None:
    folder = root / "EM" / name / "raw"
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "stack.tif", np.zeros(shape, np.uint8), photometric="minisblack")


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def root(tmp_path):
    write_dataset(tmp_path)
    return tmp_path


def test_strokes_become_class_ids_on_their_slices(root):
    folder = root / "annotations" / "EPFL" / "old"
    folder.mkdir(parents=True)
    legacy = {
        "4": [stroke("M10,10L30,10", GREEN), stroke("M10,30L50,30", BLUE, width=5)],
        "12": [stroke("M5,5L5,20", RED)],
        "15": [],
    }
    (folder / "annotations.json").write_text(json.dumps(legacy))
    with open_catalog(root) as catalog:
        report = refresh(catalog, root)
        assert report.problems == []
        row = catalog.annotation("EPFL", "old")
    assert row["slices"] == [4, 12]
    assert {c["id"]: c["name"] for c in row["classes"]} == {
        0: "background",
        1: "mitochondria",
        2: "endoplasmic reticulum",
    }
    z4 = read_png(folder / "z00004.png")
    assert z4.shape == (40, 60) and z4.dtype == np.uint8
    assert z4[10, 20] == 1 and z4[30, 30] == 2 and z4[20, 20] == 255
    assert int((z4[:, 30] == 2).sum()) == 5  # the stroke keeps its 5-pixel width
    z12 = read_png(folder / "z00012.png")
    assert z12[12, 5] == 0 and set(np.unique(z12)) == {0, 255}
    assert not (folder / "z00015.png").exists()
    assert (folder / "annotations.json").is_file()  # the original is kept


def test_a_file_beside_the_annotation_folders_gets_a_folder_of_its_own(root):
    (root / "annotations" / "EPFL").mkdir(parents=True)
    (root / "annotations" / "EPFL" / "annotations.json").write_text(
        json.dumps({"0": [stroke("M1,1L9,1", GREEN)]})
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.annotation("EPFL", "annotations")["slices"] == [0]
    assert (root / "annotations" / "EPFL" / "annotations" / "z00000.png").is_file()


def test_setup_json_pointing_at_an_annotations_file_imports_it(root):
    (root / "old").mkdir()
    (root / "old" / "mito.json").write_text(json.dumps({"7": [stroke("M1,1L9,1", GREEN)]}))
    (root / "setup.json").write_text(
        json.dumps(
            {
                "datasets": [{"title": "EPFL"}],
                "annotations": [{"title": "mito", "location": "old/mito.json", "dataset": "EPFL"}],
            }
        )
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        row = catalog.annotation("EPFL", "mito")
        assert row["origin"] == "setup" and row["slices"] == [7]
        assert row["location"] == "annotations/EPFL/mito"
        assert len(catalog.annotations()) == 1


def test_unknown_colours_and_bad_paths_are_reported_and_skipped(root):
    folder = root / "annotations" / "EPFL" / "mixed"
    folder.mkdir(parents=True)
    (folder / "annotations.json").write_text(
        json.dumps(
            {
                "2": [
                    stroke("M1,1L9,1", "#123456"),
                    stroke("M1,5L9,5", GREEN),
                    stroke("M1,1 C 3,3 5,5 9,9", GREEN),
                ],
                "top": [stroke("M1,1L9,1", GREEN)],
            }
        )
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        problems = {p["where"]: p for p in catalog.problems("scan")}
        assert catalog.annotation("EPFL", "mixed")["slices"] == [2]
    assert set(problems) == {"2[0]", "2[2]", "'top'"}
    assert "#123456" in problems["2[0]"]["reason"]
    assert problems["2[0]"]["source"] == "annotations/EPFL/mixed/annotations.json"
    assert read_png(folder / "z00002.png")[5, 5] == 1


def test_import_happens_once_and_again_when_the_file_changes(root):
    folder = root / "annotations" / "EPFL" / "old"
    folder.mkdir(parents=True)
    source = folder / "annotations.json"
    source.write_text(
        json.dumps({"1": [stroke("M1,1L9,1", GREEN)], "2": [stroke("M1,1L9,1", RED)]})
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        first_write = (folder / "z00001.png").stat().st_mtime_ns
        assert not refresh(catalog, root).changed
        assert (folder / "z00001.png").stat().st_mtime_ns == first_write
        source.write_text(json.dumps({"1": [stroke("M1,1L9,1", BLUE)]}))
        os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
        refresh(catalog, root)
        assert catalog.annotation("EPFL", "old")["slices"] == [1]
    assert read_png(folder / "z00001.png")[1, 4] == 2
    assert not (folder / "z00002.png").exists()  # it came from the old version of the file


def test_slices_edited_after_import_are_never_overwritten(root):
    folder = root / "annotations" / "EPFL" / "old"
    folder.mkdir(parents=True)
    source = folder / "annotations.json"
    source.write_text(json.dumps({"1": [stroke("M1,1L9,1", GREEN)]}))
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        edited = np.full((40, 60), 255, np.uint8)
        edited[20, 20] = 2
        slice_path = folder / "z00001.png"
        Image.fromarray(edited).save(slice_path)
        os.utime(
            slice_path, ns=(slice_path.stat().st_atime_ns, slice_path.stat().st_mtime_ns + 10**9)
        )
        source.write_text(json.dumps({"1": [stroke("M1,1L9,1", RED)]}))
        os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 2 * 10**9))
        refresh(catalog, root)
        assert any("edited" in p["reason"] for p in catalog.problems("scan"))
    assert read_png(slice_path)[20, 20] == 2


def test_import_waits_for_a_readable_dataset(tmp_path):
    folder = tmp_path / "annotations" / "Later" / "old"
    folder.mkdir(parents=True)
    (folder / "annotations.json").write_text(json.dumps({"0": [stroke("M1,1L3,1", GREEN)]}))
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        assert "postponed" in catalog.problems("scan")[0]["reason"]
        write_dataset(tmp_path, "Later", shape=(2, 8, 8))
        refresh(catalog, tmp_path)
        assert catalog.annotation("Later", "old")["slices"] == [0]
        assert catalog.problems("scan") == []


def test_closed_paths_and_rectangles_are_filled():
    closed = {"type": "path", "path": "M2,2L12,2L12,12L2,12Z", "line": {"color": GREEN}}
    rect = {"type": "rect", "x0": 20, "y0": 2, "x1": 30, "y1": 12, "line": {"color": BLUE}}
    labels = rasterise_shapes([closed, rect], (16, 40))
    assert labels[7, 7] == 1 and labels[7, 25] == 2 and labels[14, 36] == 255
