"""A dataset dropped into EM/ joins a project that can use it.

setup.json may name it (the top-level ``default_project``, which must be a listed project);
without that key the only project with classes is the one, and otherwise the first listed (the
older BioSegment's rule, so old files read as before). ``init --demo`` names the demo project,
so a stack dropped into a demo folder gets the membrane class and the demo model as default.

Real data folders in tmp, the real catalog, and the `biosegment` CLI through click's runner.
"""

from __future__ import annotations

import json

import numpy as np
import tifffile
from click.testing import CliRunner

from biosegment.catalog import open_catalog, refresh
from biosegment.cli import main
from biosegment.datafolder import DEMO_MODEL, DEMO_PROJECT, init_data_folder


def drop_stack(root, name="dropped"):
    tifffile.imwrite(
        root / "EM" / f"{name}.tif", np.zeros((2, 32, 32), np.uint8), photometric="minisblack"
    )


def cli_json(root, *args):
    result = CliRunner().invoke(main, ["--data", str(root), *args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def write_setup(root, document):
    (root / "setup.json").write_text(json.dumps(document, indent=2), encoding="utf-8")


def test_a_stack_dropped_into_a_demo_folder_joins_the_demo_project(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "data"), "--demo"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "data"
    setup = json.loads((root / "setup.json").read_text(encoding="utf-8"))
    assert setup["default_project"] == DEMO_PROJECT
    drop_stack(root)
    rows = {d["name"]: d for d in cli_json(root, "datasets")}
    assert rows["dropped"]["project"] == DEMO_PROJECT
    with open_catalog(root) as catalog:
        project = catalog.project(rows["dropped"]["project"])
    assert [c["name"] for c in project["classes"]] == ["membrane"]
    assert project["default_model"] == DEMO_MODEL


def test_without_the_key_the_only_project_with_classes_is_the_default(tmp_path):
    root = init_data_folder(tmp_path / "data", write_config=False).root
    drop_stack(root, "early")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.dataset("early")["project"] == "Main project"
    # a setup.json written before default_project existed: an empty project, then one with
    # classes (what `init` followed by `init --demo` used to leave)
    write_setup(
        root,
        {
            "EM_location": "EM",
            "projects": [
                {"title": "Main project"},
                {"title": "Mito", "classes": [{"id": 1, "name": "mitochondrion"}]},
            ],
            "datasets": [],
        },
    )
    drop_stack(root, "later")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.dataset("later")["project"] == "Mito"
        # one dropped before follows too: the folder put it there, not a person
        assert catalog.dataset("early")["project"] == "Mito"


def test_a_named_default_project_wins_and_must_be_listed(tmp_path):
    root = init_data_folder(tmp_path / "data", write_config=False).root
    projects = [
        {"title": "Mito", "classes": [{"id": 1, "name": "mitochondrion"}]},
        {"title": "Membranes", "classes": [{"id": 1, "name": "membrane"}]},
    ]
    write_setup(root, {"default_project": "Membranes", "projects": projects})
    drop_stack(root)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.dataset("dropped")["project"] == "Membranes"
        good = (root / "setup.json").read_text(encoding="utf-8")

        write_setup(root, {"default_project": "Nowhere", "projects": projects})
        report = refresh(catalog, root)
        (problem,) = [p for p in report.problems if p["source"] == "setup.json"]
        assert problem["where"] == "default_project"
        assert "'Nowhere'" in problem["reason"] and "'Mito', 'Membranes'" in problem["reason"]
        # the last good state stays in place
        assert catalog.dataset("dropped")["project"] == "Membranes"

        write_setup(root, {"default_project": 7, "projects": projects})
        (problem,) = [p for p in refresh(catalog, root).problems if p["source"] == "setup.json"]
        assert problem["where"] == "default_project" and "string" in problem["reason"]
    (root / "setup.json").write_text(good, encoding="utf-8")
    status = CliRunner().invoke(main, ["--data", str(root), "status"])
    assert status.exit_code == 0, status.output


def test_adding_the_demo_to_a_lab_setup_with_classes_keeps_the_labs_default(tmp_path):
    root = init_data_folder(tmp_path / "data", write_config=False).root
    lab = {"title": "Lab", "classes": [{"id": 1, "name": "synapse"}]}
    write_setup(root, {"EM_location": "EM", "projects": [lab]})
    result = CliRunner().invoke(main, ["init", str(root), "--demo"])
    assert result.exit_code == 0, result.output
    setup = json.loads((root / "setup.json").read_text(encoding="utf-8"))
    assert "default_project" not in setup
    assert [p["title"] for p in setup["projects"]] == ["Lab", DEMO_PROJECT]
    drop_stack(root)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.dataset("dropped")["project"] == "Lab"  # two with classes: the first
