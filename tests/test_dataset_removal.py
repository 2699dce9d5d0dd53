"""A dataset deleted from the data folder leaves the catalog once it is confirmed gone.

The daemon notices the deletion (a file event, a booked rescan: no periodic rescan and no
reindex needed), lists the dataset as missing for ``[watch] forget_after_seconds``, then
forgets it: `status` and the dashboard no longer show it as a problem, and a new process (a
restart, a CLI run) finds it gone too. Annotations made on it stay, on disk and in the catalog.
A dataset that setup.json still lists stays a problem with a clear message, and nothing is
forgotten while the image folder itself is not there (a drive that is not mounted).

Everything is real: a data folder in tmp, its SQLite catalog, a running daemon with its
watchdog observer, and the `biosegment` CLI through click's runner.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from biosegment.catalog import open_catalog, refresh
from biosegment.cli import main
from biosegment.daemon import Daemon
from biosegment.datafolder import init_data_folder
from job_fixtures import make_folder, wait_for


def write_stack(path, depth=3, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros((depth, size, size), np.uint8), photometric="minisblack")


def add_annotation(root, dataset, name="scribbles"):
    folder = root / "annotations" / dataset / name
    folder.mkdir(parents=True)
    (folder / "annotation.json").write_text(
        json.dumps({"dataset": dataset, "name": name, "classes": [{"id": 1, "name": "membrane"}]})
    )
    labels = np.full((32, 32), 255, np.uint8)
    labels[4:8, 4:20] = 1
    Image.fromarray(labels).save(folder / "z00001.png")
    return folder


def dataset_names(root) -> set[str]:
    with open_catalog(root) as catalog:
        return {d["name"] for d in catalog.datasets()}


def status(root, *args):
    return CliRunner().invoke(main, ["--data", str(root), "status", *args])


@pytest.fixture
def daemon_folder(tmp_path):
    made = []

    def start(forget_after: float):
        root, config = make_folder(
            tmp_path, demo=False, extra={"watch": {"forget_after_seconds": forget_after}}
        )
        daemon = Daemon(config).start()
        made.append(daemon)
        assert daemon.watcher.wait_idle(30)
        return root, daemon

    yield start
    for daemon in made:
        daemon.stop()


def test_the_daemon_forgets_a_deleted_dataset_and_keeps_its_annotations(daemon_folder):
    root, daemon = daemon_folder(forget_after=2.0)
    write_stack(root / "EM" / "short-lived" / "raw" / "stack.tif")
    assert wait_for(lambda: "short-lived" in dataset_names(root), 10)
    scribbles = add_annotation(root, "short-lived")
    assert daemon.watcher.wait_idle(30)
    refreshes = daemon.watcher.refreshes

    shutil.rmtree(root / "EM" / "short-lived")

    def state():
        with open_catalog(root) as catalog:
            rows = {d["name"]: d for d in catalog.datasets()}
        return rows.get("short-lived", {}).get("state", "forgotten")

    # first listed as missing (the deletion is not yet confirmed) ...
    assert wait_for(lambda: state() == "missing", 10), state()
    # ... then forgotten by the rescan the daemon booked, well before any periodic rescan
    assert wait_for(lambda: state() == "forgotten", 15), state()
    assert daemon.watcher.refreshes > refreshes
    result = status(root, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["problems"] == []
    # what a person made on it stays
    assert (scribbles / "z00001.png").is_file()
    with open_catalog(root) as catalog:
        kept = catalog.annotation("short-lived", "scribbles")
    assert kept["state"] == "ok"

    # the same files back: registered anew
    write_stack(root / "EM" / "short-lived" / "raw" / "stack.tif")
    assert wait_for(lambda: state() == "ok", 10), state()


def test_a_deleted_dataset_is_gone_for_a_later_process_too(tmp_path):
    root = init_data_folder(tmp_path / "data", write_config=False).root
    (root / "biosegment.toml").write_text(
        f'data_dir = "{root}"\n[watch]\nforget_after_seconds = 0\n', encoding="utf-8"
    )
    config = ["--config", str(root / "biosegment.toml")]
    stack = root / "EM" / "gone.tif"
    write_stack(stack)
    assert CliRunner().invoke(main, [*config, "status"]).exit_code == 0
    stack.unlink()
    # the first look after the deletion lists it as missing ...
    first = CliRunner().invoke(main, [*config, "status"])
    assert first.exit_code == 1 and "dataset gone: no longer in the data folder" in first.output
    # ... a later one (a restart, another CLI run) has forgotten it
    later = CliRunner().invoke(main, [*config, "status"])
    assert later.exit_code == 0 and "Problems:    none" in later.output, later.output
    assert "gone" not in dataset_names(root)


def test_a_dataset_setup_json_lists_stays_a_problem_when_its_files_are_gone(tmp_path):
    root = init_data_folder(tmp_path / "data", write_config=False).root
    write_stack(root / "EM" / "named" / "raw" / "stack.tif")
    setup = json.loads((root / "setup.json").read_text(encoding="utf-8"))
    setup["datasets"] = [{"title": "named"}]
    (root / "setup.json").write_text(json.dumps(setup), encoding="utf-8")
    with open_catalog(root) as catalog:
        refresh(catalog, root, forget_after=0)
        shutil.rmtree(root / "EM" / "named")
        for _ in range(3):
            refresh(catalog, root, forget_after=0)
        row = catalog.dataset("named")
        problems = catalog.all_problems()
    assert row["state"] == "missing"
    said = [p for p in problems if "named" in json.dumps(p)]
    assert any(
        p["source"] == "setup.json"
        and p["where"] == "datasets[0]"
        and p["reason"]
        == "dataset 'named': EM/named: not found; put its files back, or remove its entry "
        "from setup.json"
        for p in said
    ), said


def test_nothing_is_forgotten_while_the_image_folder_itself_is_not_there(tmp_path):
    root = init_data_folder(tmp_path / "data", write_config=False).root
    write_stack(root / "EM" / "on-a-drive.tif")
    with open_catalog(root) as catalog:
        refresh(catalog, root, forget_after=0)
        (root / "EM").rename(root / "EM-unmounted")
        for _ in range(3):
            refresh(catalog, root, forget_after=0)
        row = catalog.dataset("on-a-drive")
        assert row["state"] == "missing"
        assert row["error"] == "EM: the image folder is not there"
        (root / "EM-unmounted").rename(root / "EM")
        refresh(catalog, root, forget_after=0)
        assert catalog.dataset("on-a-drive")["state"] == "ok"
