"""Setting up a dataset from the UI writes setup.json safely: through the real HTTP API, the
change lands in the file (other keys, their order and the indentation kept), the catalog
follows, a file changed on disk meanwhile is never overwritten (409), and an invalid change is
refused naming the key (400) with the file untouched. A change sets only what it names: the
project of a dropped dataset keeps its classes and default model, and a single-file dataset
keeps its file; a change naming a project or model that does not exist is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import DEMO_DATASET, Http, chromium_page, config_for, make_demo_folder, serve

DROPPED = "fib-drop"


def _with_dropped_file(root: Path) -> Path:
    """The demo folder plus a single-file dataset dropped into EM/, not named in setup.json."""
    stack = np.arange(3 * 24 * 32, dtype=np.uint16).reshape(3, 24, 32).astype(np.uint8)
    tifffile.imwrite(root / "EM" / f"{DROPPED}.tif", stack, photometric="minisblack")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return root


def _titled(items: list, title: str) -> dict:
    return next(item for item in items if item["title"] == title)


def test_a_setup_change_is_written_keeping_the_rest_and_the_catalog_follows(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    setup = root / "setup.json"
    document = json.loads(setup.read_text(encoding="utf-8"))
    document["lab_notes"] = {"keep": "me", "order": [3, 1, 2]}  # a key BioSegment ignores
    setup.write_text(json.dumps(document, indent=4) + "\n", encoding="utf-8")
    with serve(config_for(root)) as server:
        http = Http(server.url)
        current = http.get(f"/api/v1/datasets/{DEMO_DATASET}/setup").json()
        assert current["dataset"]["project"] == "Demo"
        assert current["dataset"]["voxel_size"] == [50, 4, 4]
        assert [c["name"] for c in current["project"]["classes"]] == ["membrane"]
        reply = http.put(
            f"/api/v1/datasets/{DEMO_DATASET}/setup",
            json_body={
                "version": current["version"],
                "voxel_size": [40, 5, 5],
                "classes": [
                    {"id": 1, "name": "membrane", "color": "#00c0ff"},
                    {"id": 2, "name": "mitochondria", "color": "#ffaa00"},
                ],
            },
        )
        assert reply.status == 200, reply.body
        assert reply.json()["version"] != current["version"]

    text = setup.read_text(encoding="utf-8")
    written = json.loads(text)
    assert text.endswith("}\n") and '\n    "EM_location"' in text  # indentation kept
    assert list(written) == list(document)  # key order kept
    assert written["lab_notes"] == {"keep": "me", "order": [3, 1, 2]}
    demo = next(d for d in written["datasets"] if d["title"] == DEMO_DATASET)
    assert demo["voxel_size"] == [40, 5, 5] and demo["file_type"] == "tif3d"
    project = next(p for p in written["projects"] if p["title"] == "Demo")
    assert [c["name"] for c in project["classes"]] == ["membrane", "mitochondria"]
    assert project["default_model"] == "demo-membrane"
    assert not list(root.glob(".setup.*"))  # no temporary left
    with open_catalog(root) as catalog:
        assert catalog.dataset(DEMO_DATASET)["voxel_size"] == [40, 5, 5]


def test_a_file_changed_meanwhile_is_not_overwritten_and_bad_values_name_the_key(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    setup = root / "setup.json"
    with serve(config_for(root)) as server:
        http = Http(server.url)
        opened = http.get(f"/api/v1/datasets/{DEMO_DATASET}/setup").json()
        edited_elsewhere = setup.read_text(encoding="utf-8").replace(
            '"Main project"', '"Main lab project"'
        )
        setup.write_text(edited_elsewhere, encoding="utf-8")
        reply = http.put(
            f"/api/v1/datasets/{DEMO_DATASET}/setup",
            json_body={"version": opened["version"], "voxel_size": [1, 1, 1]},
        )
        assert reply.status == 409 and reply.json()["field"] == "version"
        assert "changed on disk" in reply.json()["error"]
        assert setup.read_text(encoding="utf-8") == edited_elsewhere

        fresh = http.get(f"/api/v1/datasets/{DEMO_DATASET}/setup").json()
        reply = http.put(
            f"/api/v1/datasets/{DEMO_DATASET}/setup",
            json_body={"version": fresh["version"], "voxel_size": [-4, 1, 1]},
        )
        assert reply.status == 400 and "voxel_size" in reply.json()["error"], reply.body
        assert setup.read_text(encoding="utf-8") == edited_elsewhere


@pytest.mark.browser
def test_the_viewer_sets_up_the_dataset_and_says_when_the_file_changed(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    setup = root / "setup.json"
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DEMO_DATASET}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.click("#setup-panel summary")
        page.wait_for_selector("#setup-panel .setup-class")
        assert page.input_value("[data-setup=voxel-z]") == "50"
        page.fill("[data-setup=voxel-z]", "40")
        page.click("[data-setup=add-class]")
        new_class = page.query_selector_all("#setup-panel .setup-class")[-1]
        new_class.query_selector("input[type=text]").fill("mitochondria")
        new_class.query_selector("input[type=color]").fill("#ffaa00")
        new_class.query_selector("[data-setup=objects]").check()
        page.click("[data-setup=save]")
        page.wait_for_selector("[data-setup=message][data-state=saved]")
        written = json.loads(setup.read_text(encoding="utf-8"))
        demo = next(d for d in written["datasets"] if d["title"] == DEMO_DATASET)
        assert demo["voxel_size"] == [40, 4, 4]
        project = next(p for p in written["projects"] if p["title"] == "Demo")
        assert {"id": 2, "name": "mitochondria", "color": "#ffaa00", "objects": True} in project[
            "classes"
        ]
        # segmentations of this project now count mitochondria as objects; membrane stays a class
        membrane = next(c for c in project["classes"] if c["name"] == "membrane")
        assert membrane.get("objects") in (None, False)
        # the new class can be painted at once
        page.wait_for_selector("button.classbtn[data-class-id='2']")

        # someone edits the file meanwhile: the panel refuses and shows the file as it is now
        setup.write_text(
            setup.read_text(encoding="utf-8").replace(
                '"voxel_size": [\n        40', '"voxel_size": [\n        30'
            ),
            encoding="utf-8",
        )
        edited = setup.read_text(encoding="utf-8")
        page.fill("[data-setup=voxel-y]", "3")
        page.click("[data-setup=save]")
        page.wait_for_selector("[data-setup=message][data-state=error]")
        assert "changed on disk" in page.inner_text("[data-setup=message]")
        assert setup.read_text(encoding="utf-8") == edited
        page.wait_for_function("() => document.querySelector('[data-setup=voxel-y]').value === '4'")
        # the refused PUT is the only thing the console reports
        assert [e for e in browser.errors if "409" not in e] == []


def test_a_dropped_file_set_up_for_a_project_keeps_the_project_and_its_file(tmp_path):
    root = _with_dropped_file(make_demo_folder(tmp_path / "data"))
    setup = root / "setup.json"
    before = json.loads(setup.read_text(encoding="utf-8"))
    with serve(config_for(root)) as server:
        http = Http(server.url)
        current = http.get(f"/api/v1/datasets/{DROPPED}/setup").json()
        # the project it joins (the demo folder's default_project), and what every project it
        # may pick holds
        assert current["dataset"]["project"] == "Demo"
        demo = _titled(current["project_setups"], "Demo")
        assert [c["name"] for c in demo["classes"]] == ["membrane"]
        assert demo["default_model"] == "demo-membrane"
        reply = http.put(
            f"/api/v1/datasets/{DROPPED}/setup",
            json_body={
                "version": current["version"],
                "project": "Demo",
                "voxel_size": [10, 10, 10],
            },
        )
        assert reply.status == 200, reply.body
        assert [c["name"] for c in reply.json()["project"]["classes"]] == ["membrane"]
        listed = {d["name"]: d for d in http.get("/api/v1/datasets").json()}
        problems = http.get("/api/v1/problems").json()

    written = json.loads(setup.read_text(encoding="utf-8"))
    assert written["projects"] == before["projects"]  # classes and default model untouched
    assert _titled(written["datasets"], DROPPED) == {
        "title": DROPPED,
        "location": f"EM/{DROPPED}.tif",
        "voxel_size": [10, 10, 10],
        "project": "Demo",
    }
    assert listed[DROPPED]["state"] == "ok" and listed[DROPPED]["location"] == f"EM/{DROPPED}.tif"
    assert listed[DROPPED]["project"] == "Demo" and listed[DROPPED]["voxel_size"] == [10, 10, 10]
    assert [p for p in problems if DROPPED in json.dumps(p)] == []
    with open_catalog(root) as catalog:  # as the daemon finds it after a restart
        report = refresh(catalog, root)
        assert catalog.dataset(DROPPED)["state"] == "ok"
        assert [p for p in catalog.all_problems() if DROPPED in json.dumps(p)] == [], report


def test_a_change_to_another_key_leaves_the_project_as_it_is(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    setup = root / "setup.json"
    document = json.loads(setup.read_text(encoding="utf-8"))
    demo = _titled(document["projects"], "Demo")
    demo["classes"][0]["note"] = "outer and inner membranes"  # a key the form does not show
    setup.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with serve(config_for(root)) as server:
        http = Http(server.url)
        url = f"/api/v1/datasets/{DEMO_DATASET}/setup"
        current = http.get(url).json()
        same = http.put(url, json_body={"version": current["version"], "project": "Demo"})
        assert same.status == 200 and same.json()["version"] == current["version"]
        assert json.loads(setup.read_text(encoding="utf-8")) == document  # not rewritten
        renamed = http.put(
            url,
            json_body={
                "version": current["version"],
                "classes": [{"id": 1, "name": "membranes", "color": "#ff3030"}],
            },
        )
        assert renamed.status == 200, renamed.body
    project = _titled(json.loads(setup.read_text(encoding="utf-8"))["projects"], "Demo")
    assert project["classes"] == [
        {"id": 1, "name": "membranes", "color": "#ff3030", "note": "outer and inner membranes"}
    ]
    assert project["default_model"] == "demo-membrane"


def test_a_change_naming_a_project_or_model_that_does_not_exist_is_refused(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    setup = root / "setup.json"
    original = setup.read_text(encoding="utf-8")
    with serve(config_for(root)) as server:
        http = Http(server.url)
        url = f"/api/v1/datasets/{DEMO_DATASET}/setup"
        version = http.get(url).json()["version"]
        for change, field, name in (
            ({"project": "Nowhere"}, "project", "Nowhere"),
            ({"default_model": "ghost-model"}, "default_model", "ghost-model"),
            ({"project": "Main project", "default_model": "ghost-model"}, "default_model", "ghost"),
        ):
            reply = http.put(url, json_body={"version": version, **change})
            assert reply.status == 400, (change, reply.body)
            assert reply.json()["field"] == field and name in reply.json()["error"], reply.body
            assert setup.read_text(encoding="utf-8") == original

        # a new project is added when the change describes it; a real model may be its default
        added = http.put(
            url,
            json_body={
                "version": version,
                "project": "Mitochondria",
                "classes": [{"id": 1, "name": "mitochondrion", "color": "#ffaa00"}],
                "default_model": "demo-membrane",
            },
        )
        assert added.status == 200, added.body
    written = json.loads(setup.read_text(encoding="utf-8"))
    assert _titled(written["projects"], "Mitochondria")["default_model"] == "demo-membrane"
    assert _titled(written["datasets"], DEMO_DATASET)["project"] == "Mitochondria"


@pytest.mark.browser
def test_the_panel_shows_the_classes_and_default_model_of_the_project_picked(tmp_path):
    root = _with_dropped_file(make_demo_folder(tmp_path / "data"))
    setup = root / "setup.json"
    before = json.loads(setup.read_text(encoding="utf-8"))
    with serve(config_for(root)) as server, chromium_page() as browser:
        page = browser.page
        page.goto(f"{server.url}datasets/{DROPPED}")
        page.wait_for_selector("#viewer[data-ready=true]")
        page.click("#setup-panel summary")
        page.wait_for_function(
            "() => document.querySelector('[data-setup=project]').value === 'Demo'"
        )
        page.fill("[data-setup=project]", "Main project")
        page.wait_for_selector("#setup-panel .setup-class", state="detached")
        page.fill("[data-setup=project]", "Demo")
        page.wait_for_selector("#setup-panel .setup-class")
        names = page.eval_on_selector_all(
            "#setup-panel .setup-class input[type=text]", "inputs => inputs.map(i => i.value)"
        )
        assert names == ["membrane"]
        assert page.input_value("[data-setup=default-model]") == "demo-membrane"
        for axis in "zyx":
            page.fill(f"[data-setup=voxel-{axis}]", "10")
        page.click("[data-setup=save]")
        page.wait_for_selector("[data-setup=message][data-state=saved]")
        written = json.loads(setup.read_text(encoding="utf-8"))
        assert written["projects"] == before["projects"]
        entry = _titled(written["datasets"], DROPPED)
        assert entry["location"] == f"EM/{DROPPED}.tif"
        # Demo is the project it joined already (the file's default_project): nothing to add
        assert entry.get("project", written["default_project"]) == "Demo"
        assert entry["voxel_size"] == [10, 10, 10]
        assert browser.errors == []
