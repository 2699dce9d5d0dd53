"""A symlink inside a registered entry never reads outside the data folder.

A slice of a TIFF folder, an annotation's PNG and a model's ``model.json`` may each be a link to
a file elsewhere on the machine. The scan lists such a link in ``/problems`` (naming it) instead
of registering what it points at, and the voxel, tile, slice and model endpoints never serve its
content, even when the link appears after the entry was registered.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, serve

SECRET = 77  # the grey value of the outside files: it must never come back


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    tifffile.imwrite(
        outside / "secret.tif", np.full((8, 8), SECRET, np.uint8), photometric="minisblack"
    )
    Image.fromarray(np.full((512, 512), 1, np.uint8)).save(outside / "secret.png")
    (outside / "model.json").write_text(json.dumps({"classes": [{"id": 1, "name": "stolen"}]}))
    stack = root / "EM" / "stack"
    stack.mkdir()
    for z in range(3):
        tifffile.imwrite(
            stack / f"s{z}.tif", np.full((8, 8), z, np.uint8), photometric="minisblack"
        )
    return root, outside


def _refresh(root):
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        return catalog.problems()


def test_a_slice_linked_outside_is_a_problem_and_never_served(site):
    root, outside = site
    _refresh(root)
    with serve(config_for(root)) as server:
        http = Http(server.url)
        assert http.get("/api/v1/datasets/stack/voxel?z=1&y=0&x=0").json()["value"] == 1
        # the link appears after the dataset was registered: requests refuse it at once
        os.unlink(root / "EM" / "stack" / "s1.tif")
        os.symlink(outside / "secret.tif", root / "EM" / "stack" / "s1.tif")
        voxel = http.get("/api/v1/datasets/stack/voxel?z=1&y=0&x=0")
        tile = http.get("/api/v1/datasets/stack/tiles/raw/z/1/0/0/0.png")
        assert voxel.status == 400 and "EM/stack/s1.tif" in voxel.json()["error"], voxel.body
        assert tile.status == 400 and "outside the data folder" in tile.json()["error"]
        problems = _refresh(root)
        listed = http.get("/api/v1/problems").json()
    assert any(
        p["source"] == "EM/stack"
        and "EM/stack/s1.tif is a link to a file outside the data folder" in p["reason"]
        for p in problems
    ), problems
    assert any("EM/stack/s1.tif" in p["reason"] for p in listed), listed


def test_an_annotation_slice_linked_outside_is_refused(site):
    root, outside = site
    with serve(config_for(root)) as server:
        http = Http(server.url)
        assert http.post(
            f"/api/v1/datasets/{DEMO_DATASET}/annotations", json_body={"name": "linked"}
        ).status in (200, 201)
        folder = root / "annotations" / DEMO_DATASET / "linked"
        os.symlink(outside / "secret.png", folder / "z00001.png")
        reply = http.get(f"/api/v1/datasets/{DEMO_DATASET}/annotations/linked/slices/1")
        tile = http.get(
            f"/api/v1/datasets/{DEMO_DATASET}/tiles/annotation/z/1/0/0/0.png?name=linked"
        )
        problems = _refresh(root)
    assert reply.status == 400, reply.status
    assert f"annotations/{DEMO_DATASET}/linked/z00001.png" in reply.json()["error"]
    assert tile.status == 400, tile.status
    assert any("linked/z00001.png is a link" in p["reason"] for p in problems), problems


def test_a_model_card_linked_outside_is_a_problem(site):
    from webui_fixtures import make_tiny_model

    root, outside = site
    folder = make_tiny_model(root, "linked-model")
    os.unlink(folder / "model.json")
    os.symlink(outside / "model.json", folder / "model.json")
    problems = _refresh(root)
    assert any("models/linked-model/model.json is a link" in p["reason"] for p in problems), (
        problems
    )
    with serve(config_for(root)) as server:
        reply = Http(server.url).get("/api/v1/models/linked-model")
    assert "stolen" not in reply.body.decode()
