"""API: creating annotations and saving painted slices in the sparse per-slice format (SPEC 4)."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
from PIL import Image

from biosegment.volumes import read_png_slice
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, serve

BASE = f"/api/v1/datasets/{DEMO_DATASET}/annotations"


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with serve(config_for(root, max_request_mb=1)) as server:
        yield Http(server.url), root


def create(http, name="scribbles", **extra):
    return http.post(BASE, json_body={"name": name, **extra})


def put_slice(http, z, labels, *, name="scribbles", **kw):
    return http.put(
        f"{BASE}/{name}/slices/{z}",
        body=labels.tobytes(),
        headers={"Content-Type": "application/octet-stream", **kw.pop("headers", {})},
        **kw,
    )


def test_create_uses_project_classes_and_writes_annotation_json(site):
    http, root = site
    reply = create(http, author="ana")
    assert reply.status == 201
    row = reply.json()
    assert row["location"] == f"annotations/{DEMO_DATASET}/scribbles" and row["slices"] == []
    assert [c["name"] for c in row["classes"]] == ["background", "membrane"]
    meta = json.loads((root / row["location"] / "annotation.json").read_text())
    assert meta["author"] == "ana" and meta["classes"] == row["classes"]
    assert [a["name"] for a in http.get(BASE).json()] == ["scribbles"]
    assert http.get(f"{BASE}/scribbles").json()["name"] == "scribbles"
    duplicate = create(http)
    assert duplicate.status == 409 and duplicate.json()["field"] == "name"


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "", "x" * 101, "a\\b"])
def test_names_that_are_not_plain_folder_names_are_refused(site, name):
    http, root = site
    reply = create(http, name=name)
    assert reply.status == 400 and reply.json()["field"] == "name"
    assert not (root / "annotations" / "escape").exists()
    assert not (root / "escape").exists()


def test_malformed_and_mistyped_json(site):
    http, _ = site
    broken = http.post(BASE, body=b'{"name": ', headers={"Content-Type": "application/json"})
    assert broken.status == 400 and broken.json()["field"] == "body"
    assert "malformed JSON" in broken.json()["error"]
    wrong_type = http.post(BASE, json_body={"name": 5})
    assert wrong_type.status == 400 and wrong_type.json()["field"] == "name"
    extra = http.post(BASE, json_body={"name": "ok", "colour": "red"})
    assert extra.status == 400 and extra.json()["field"] == "colour"
    bad_class = http.post(
        BASE, json_body={"name": "ok", "classes": [{"id": 1, "name": "mito", "color": "red"}]}
    )
    assert bad_class.status == 400 and bad_class.json()["field"] == "classes.0.color"
    dupes = http.post(
        BASE,
        json_body={
            "name": "ok",
            "classes": [
                {"id": 1, "name": "a", "color": "#ffffff"},
                {"id": 1, "name": "b", "color": "#000000"},
            ],
        },
    )
    assert dupes.status == 400 and dupes.json()["field"] == "classes"
    assert http.post("/api/v1/datasets/nope/annotations", json_body={"name": "x"}).status == 404


def test_saved_slice_is_a_png_of_class_ids_and_reads_back(site):
    http, root = site
    create(http)
    labels = np.full((512, 512), 255, dtype=np.uint8)
    labels[100:110, 50:200] = 1
    labels[300:320, 300:310] = 0
    reply = put_slice(http, 3, labels)
    assert reply.status == 200 and reply.json()["slices"] == [3]
    stored = read_png_slice(root / "annotations" / DEMO_DATASET / "scribbles" / "z00003.png")
    np.testing.assert_array_equal(stored, labels)
    back = http.get(f"{BASE}/scribbles/slices/3")
    assert back.headers["X-Height"] == "512" and back.headers["X-Width"] == "512"
    np.testing.assert_array_equal(np.frombuffer(back.body, np.uint8).reshape(512, 512), labels)
    as_png = http.get(f"{BASE}/scribbles/slices/3?format=png")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(as_png.body))), labels)
    empty = http.get(f"{BASE}/scribbles/slices/0")
    assert set(empty.body) == {255}


def test_gzip_and_png_bodies_and_erasing_everything_removes_the_slice(site):
    http, root = site
    create(http)
    labels = np.full((512, 512), 255, dtype=np.uint8)
    labels[:5, :5] = 1
    zipped = http.put(
        f"{BASE}/scribbles/slices/1",
        body=gzip.compress(labels.tobytes()),
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
    )
    assert zipped.status == 200 and zipped.json()["slices"] == [1]
    buffer = io.BytesIO()
    Image.fromarray(labels).save(buffer, format="PNG")
    png = http.put(
        f"{BASE}/scribbles/slices/2", body=buffer.getvalue(), headers={"Content-Type": "image/png"}
    )
    assert png.status == 200 and png.json()["slices"] == [1, 2]
    erased = put_slice(http, 1, np.full((512, 512), 255, dtype=np.uint8))
    assert erased.json()["slices"] == [2]
    assert not (root / "annotations" / DEMO_DATASET / "scribbles" / "z00001.png").exists()


def test_bad_slices_are_refused_with_the_field(site):
    http, _ = site
    create(http)
    wrong_size = put_slice(http, 0, np.zeros((256, 512), dtype=np.uint8))
    assert wrong_size.status == 400 and wrong_size.json()["field"] == "body"
    assert "262144" in wrong_size.json()["error"]
    unknown_class = put_slice(http, 0, np.full((512, 512), 7, dtype=np.uint8))
    assert unknown_class.status == 400 and "7" in unknown_class.json()["error"]
    rgb = io.BytesIO()
    Image.new("RGB", (512, 512)).save(rgb, format="PNG")
    colour = http.put(
        f"{BASE}/scribbles/slices/0", body=rgb.getvalue(), headers={"Content-Type": "image/png"}
    )
    assert colour.status == 400 and colour.json()["field"] == "body"
    not_png = http.put(
        f"{BASE}/scribbles/slices/0", body=b"hello", headers={"Content-Type": "image/png"}
    )
    assert not_png.status == 400 and not_png.json()["field"] == "body"
    wrong_type = http.put(
        f"{BASE}/scribbles/slices/0", body=b"x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status == 415
    bomb = http.put(
        f"{BASE}/scribbles/slices/0",
        body=gzip.compress(bytes(3 * 2**20)),
        headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
    )
    assert bomb.status == 413 and bomb.json()["field"] == "body"
    too_big = put_slice(http, 0, np.zeros(2 * 2**20, dtype=np.uint8))
    assert too_big.status == 413 and too_big.json()["field"] == "body"
    outside = put_slice(http, 5, np.zeros((512, 512), dtype=np.uint8))
    assert outside.status == 404 and outside.json()["field"] == "z"
    unknown = put_slice(http, 0, np.zeros((512, 512), dtype=np.uint8), name="nope")
    assert unknown.status == 404


def test_a_name_that_differs_only_in_case_is_refused(site):
    http, root = site
    assert create(http, name="Cells").status == 201
    clash = create(http, name="cells")
    assert clash.status == 409 and clash.json()["field"] == "name", clash.body
    assert "'Cells'" in clash.json()["error"] and "case" in clash.json()["error"]
    (root / "annotations" / DEMO_DATASET / "Mito").mkdir()  # a folder the catalog has not met
    assert create(http, name="MITO").status == 409
    folders = sorted(p.name for p in (root / "annotations" / DEMO_DATASET).iterdir())
    assert folders == ["Cells", "Mito"]
    assert [a["name"] for a in http.get(BASE).json()] == ["Cells"]
