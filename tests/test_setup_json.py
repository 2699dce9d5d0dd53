"""setup.json: what the old stack accepted stays valid, bad files keep the last good state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import load_setup, open_catalog, reconcile_setup, refresh
from biosegment.errors import SetupError

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "neuralnets"

SPEC_EXAMPLE = {
    "EM_location": "EM",
    "projects": [{"title": "Main project"}],
    "models": [
        {"title": "mito 2D", "location": "models/mito_2d.pytorch", "project": "Main project"}
    ],
    "datasets": [{"title": "EPFL", "resolution": [48, 32, 4], "file_type": "tif3d"}],
    "segmentations": None,
    "annotations": None,
}


def write_stack(path: Path, shape=(4, 32, 48), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros(shape, dtype), photometric="minisblack")
    return path


def write_setup(root: Path, content) -> None:
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    (root / "setup.json").write_text(text, encoding="utf-8")


@pytest.fixture
def spec_root(tmp_path):
    """A data folder laid out for the SPEC example setup.json."""
    if not (FIXTURES / "unet2d_fm8_l3_batch.pytorch").is_file():
        pytest.skip(f"neuralnets fixtures not found at {FIXTURES}")
    write_stack(tmp_path / "EM" / "EPFL" / "raw" / "volume.tif")
    (tmp_path / "models").mkdir()
    shutil.copy(FIXTURES / "unet2d_fm8_l3_batch.pytorch", tmp_path / "models" / "mito_2d.pytorch")
    write_setup(tmp_path, SPEC_EXAMPLE)
    return tmp_path


def test_the_spec_example_loads_and_applies(spec_root):
    document = load_setup(spec_root)
    assert document.em_location == "EM"
    assert document.datasets[0].location == "EM/EPFL"
    assert document.datasets[0].resolution == (48, 32, 4)
    assert document.models[0].location == "models/mito_2d.pytorch"
    with open_catalog(spec_root) as catalog:
        report = refresh(catalog, spec_root)
        assert report.setup == "valid" and report.problems == []
        epfl = catalog.dataset("EPFL")
        assert epfl["shape"] == [4, 32, 48] and epfl["dtype"] == "uint8"
        assert epfl["location"] == "EM/EPFL/raw/volume.tif"
        assert epfl["origin"] == "setup" and epfl["project"] == "Main project"
        model = catalog.model("mito 2D")
        assert model["state"] == "ok" and model["project"] == "Main project"
        assert model["architecture"]["feature_maps"] == 8
        # the scan sees models/mito_2d.pytorch too, but registers it only once
        assert [m["name"] for m in catalog.models()] == ["mito 2D"]
        assert [p["name"] for p in catalog.projects()] == ["Main project"]


def test_null_lists_missing_keys_and_extra_keys_are_accepted(tmp_path):
    write_setup(
        tmp_path,
        {
            "projects": None,
            "datasets": None,
            "models": None,
            "description": "kept by the old stack, ignored here",
        },
    )
    document = load_setup(tmp_path)
    assert document.datasets == () and document.em_location == "EM"
    write_setup(tmp_path, {})
    assert load_setup(tmp_path).projects == ()


def test_no_setup_json_is_fine(tmp_path):
    assert load_setup(tmp_path) is None
    with open_catalog(tmp_path) as catalog:
        assert reconcile_setup(catalog, tmp_path).setup == "absent"


def test_new_optional_keys_are_read(tmp_path):
    write_setup(
        tmp_path,
        {
            "auto_segment": True,
            "projects": [
                {
                    "title": "P",
                    "default_model": "m",
                    "classes": [{"id": 1, "name": "mitochondrion", "color": "#00c0ff"}],
                },
                {"title": "Q", "auto_segment": False},
            ],
            "datasets": [{"title": "d", "voxel_size": [50, 5, 5]}],
        },
    )
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        p, q = catalog.project("P"), catalog.project("Q")
        assert p["classes"] == [{"id": 1, "name": "mitochondrion", "color": "#00c0ff"}]
        assert p["default_model"] == "m" and p["auto_segment"] is True
        assert q["auto_segment"] is False
    assert load_setup(tmp_path).datasets[0].voxel_size == (50.0, 5.0, 5.0)


def test_invalid_json_names_line_and_column_and_keeps_the_last_good_state(spec_root):
    with open_catalog(spec_root) as catalog:
        refresh(catalog, spec_root)
        before = catalog.datasets()
        write_setup(
            spec_root, '{\n  "EM_location": "EM",\n  "datasets": [\n    {"title": "EPFL",}\n  ]\n}'
        )
        with pytest.raises(SetupError) as caught:
            load_setup(spec_root)
        assert caught.value.where == "line 4, column 22"
        report = refresh(catalog, spec_root)
        assert report.setup == "invalid"
        problems = catalog.problems("setup.json")
        assert [(p["source"], p["where"]) for p in problems] == [
            ("setup.json", "line 4, column 22")
        ]
        assert "JSON" in problems[0]["reason"]
        assert catalog.datasets() == before
        assert catalog.model("mito 2D")["state"] == "ok"
        # fixing the file clears the problem
        write_setup(spec_root, SPEC_EXAMPLE)
        assert refresh(catalog, spec_root).setup == "valid"
        assert catalog.problems("setup.json") == []


@pytest.mark.parametrize("location", ["../elsewhere", "/etc", "EM/../../x", "C:\\data"])
def test_locations_outside_the_root_are_rejected_naming_the_key(tmp_path, location):
    write_setup(
        tmp_path,
        {"datasets": [{"title": "a"}, {"title": "b"}, {"title": "c", "location": location}]},
    )
    with pytest.raises(SetupError) as caught:
        load_setup(tmp_path)
    assert caught.value.where == "datasets[2].location"
    assert caught.value.source == "setup.json"


def test_a_title_that_climbs_out_is_rejected_too(tmp_path):
    write_setup(tmp_path, {"datasets": [{"title": ".."}]})
    with pytest.raises(SetupError, match=r"datasets\[0\]\.title"):
        load_setup(tmp_path)


def test_unknown_file_type_is_rejected_naming_the_key(tmp_path):
    write_setup(tmp_path, {"datasets": [{"title": "a", "file_type": "nifti"}]})
    with pytest.raises(SetupError) as caught:
        load_setup(tmp_path)
    assert caught.value.where == "datasets[0].file_type"
    assert "tif3d" in caught.value.reason


@pytest.mark.parametrize(
    "content, where",
    [
        ([], "(top level)"),
        ({"datasets": {"title": "a"}}, "datasets"),
        ({"datasets": ["a"]}, "datasets[0]"),
        ({"datasets": [{"title": 5}]}, "datasets[0].title"),
        ({"datasets": [{"title": "a", "resolution": [1, "2", 3]}]}, "datasets[0].resolution[1]"),
        ({"datasets": [{"title": "a", "voxel_size": [1, 2]}]}, "datasets[0].voxel_size"),
        (
            {"projects": [{"title": "p", "classes": [{"id": 255, "name": "x"}]}]},
            "projects[0].classes[0].id",
        ),
        (
            {"projects": [{"title": "p", "classes": [{"id": 1, "name": "x", "color": "red"}]}]},
            "projects[0].classes[0].color",
        ),
        ({"auto_segment": "yes"}, "auto_segment"),
        ({"datasets": [{"title": "a"}, {"title": "a"}]}, "datasets[1].title"),
        ({"segmentations": [{"title": "s"}]}, "segmentations[0].dataset"),
        ({"EM_location": 3}, "EM_location"),
    ],
)
def test_wrong_types_are_rejected_naming_the_key(tmp_path, content, where):
    write_setup(tmp_path, content)
    with pytest.raises(SetupError) as caught:
        load_setup(tmp_path)
    assert caught.value.where == where


def test_every_problem_of_a_bad_file_is_recorded(tmp_path):
    write_setup(
        tmp_path,
        {"datasets": [{"title": "a", "file_type": "nifti"}, {"title": "b", "location": "/abs"}]},
    )
    with open_catalog(tmp_path) as catalog:
        report = reconcile_setup(catalog, tmp_path)
        assert {p["where"] for p in report.problems} == {
            "datasets[0].file_type",
            "datasets[1].location",
        }
        assert len(catalog.problems()) == 2
        assert catalog.datasets() == []


def test_a_dataset_whose_files_are_missing_is_a_per_entry_problem(spec_root):
    setup = dict(SPEC_EXAMPLE, datasets=[{"title": "EPFL"}, {"title": "Gone"}])
    write_setup(spec_root, setup)
    with open_catalog(spec_root) as catalog:
        report = refresh(catalog, spec_root)
        assert report.setup == "valid"
        assert catalog.dataset("EPFL")["state"] == "ok"
        gone = catalog.dataset("Gone")
        assert gone["state"] == "missing" and "EM/Gone" in gone["error"]
        problems = catalog.problems("setup.json")
        assert [p["where"] for p in problems] == ["datasets[1]"]
        assert catalog.model("mito 2D")["state"] == "ok"


def test_a_missing_model_file_is_a_per_entry_problem(tmp_path):
    write_setup(tmp_path, {"models": [{"title": "m", "location": "models/m.pytorch"}]})
    with open_catalog(tmp_path) as catalog:
        reconcile_setup(catalog, tmp_path)
        assert catalog.model("m")["state"] == "missing"
        assert catalog.problems()[0]["where"] == "models[0]"


def test_resolution_that_disagrees_with_the_files_is_reported(spec_root):
    write_setup(
        spec_root, dict(SPEC_EXAMPLE, datasets=[{"title": "EPFL", "resolution": [1024, 768, 165]}])
    )
    with open_catalog(spec_root) as catalog:
        refresh(catalog, spec_root)
        assert catalog.dataset("EPFL")["shape"] == [4, 32, 48]
        assert catalog.problems()[0]["where"] == "datasets[0].resolution"


def test_entries_removed_from_the_file_are_handed_to_the_scan(spec_root):
    write_stack(spec_root / "elsewhere" / "other.tif")
    write_setup(
        spec_root,
        dict(
            SPEC_EXAMPLE,
            datasets=[{"title": "EPFL"}, {"title": "Other", "location": "elsewhere/other.tif"}],
        ),
    )
    with open_catalog(spec_root) as catalog:
        refresh(catalog, spec_root)
        assert catalog.dataset("Other")["origin"] == "setup"
        write_setup(spec_root, dict(SPEC_EXAMPLE, datasets=[], projects=[]))
        refresh(catalog, spec_root)
        # still in EM/: listed, now by the scan; outside the layout: marked missing, kept
        assert catalog.dataset("EPFL")["state"] == "ok"
        assert catalog.dataset("EPFL")["origin"] == "scan"
        assert catalog.dataset("Other")["state"] == "missing"
        assert catalog.project("Main project")["state"] == "missing"


def test_ui_rows_survive_any_reconcile(spec_root):
    with open_catalog(spec_root) as catalog:
        catalog.upsert_project(name="Painted", origin="ui")
        catalog.upsert_annotation(
            dataset="EPFL", name="scribbles", origin="ui", location="annotations/EPFL/scribbles"
        )
        refresh(catalog, spec_root)
        write_setup(spec_root, {"projects": [], "datasets": []})
        refresh(catalog, spec_root)
        (spec_root / "setup.json").unlink()
        refresh(catalog, spec_root)
        assert catalog.project("Painted")["state"] == "ok"
        annotation = catalog.annotation("EPFL", "scribbles")
        assert annotation["origin"] == "ui" and annotation["state"] == "ok"


def test_a_broken_edit_does_not_move_em_location(tmp_path):
    write_stack(tmp_path / "images" / "a.tif")
    write_setup(tmp_path, {"EM_location": "images"})
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        assert catalog.dataset("a")["state"] == "ok"
        write_setup(tmp_path, '{"EM_location": "images",')
        refresh(catalog, tmp_path)
        assert catalog.dataset("a")["state"] == "ok"


def test_a_byte_order_mark_is_tolerated(tmp_path):
    (tmp_path / "setup.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(SPEC_EXAMPLE).encode())
    assert load_setup(tmp_path).projects[0].title == "Main project"
