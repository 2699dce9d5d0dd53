"""API: the dashboard document and the catalog endpoints (projects, datasets, models, problems)."""

from __future__ import annotations

import json

import pytest

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import (
    DEMO_DATASET,
    Http,
    config_for,
    make_demo_folder,
    make_tiny_model,
    png_pixels,
    serve,
)


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    make_tiny_model(
        root,
        metrics=[
            {"epoch": 1, "loss": 0.9, "dice": 0.4},
            {"epoch": 2, "loss": 0.5, "dice": 0.7},
            {"epoch": 3, "loss": 0.6, "dice": 0.6},
        ],
    )
    with serve(config_for(root)) as server:
        yield Http(server.url), root


def test_dashboard_lists_everything_and_answers_304_while_unchanged(site):
    http, root = site
    first = http.get("/api/v1/dashboard")
    assert first.status == 200
    doc = first.json()
    assert [d["name"] for d in doc["datasets"]] == [DEMO_DATASET]
    dataset = doc["datasets"][0]
    assert dataset["shape"] == [5, 512, 512] and dataset["voxel_size"] == [50.0, 4.0, 4.0]
    assert dataset["state"] == "ok" and dataset["thumbnail_url"].startswith("/api/v1/datasets/")
    assert {p["name"] for p in doc["projects"]} >= {"Demo"}
    model = next(m for m in doc["models"] if m["name"] == "tiny-membrane")
    assert model["best_metrics"] == {"loss": 0.5, "dice": 0.7}
    assert [c["name"] for c in model["classes"]] == ["background", "membrane"]
    assert doc["counts"]["datasets"]["ok"] == 1
    again = http.get("/api/v1/dashboard", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    # something new registered: the document (and its ETag) changes
    folder = root / "annotations" / DEMO_DATASET / "a1"
    folder.mkdir(parents=True)
    (folder / "annotation.json").write_text(json.dumps({"classes": []}), encoding="utf-8")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    changed = http.get("/api/v1/dashboard", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status == 200
    assert [a["name"] for a in changed.json()["annotations"]] == ["a1"]


def test_dataset_detail_has_classes_layers_and_pyramids(site):
    http, _ = site
    doc = http.get(f"/api/v1/datasets/{DEMO_DATASET}").json()
    assert doc["classes"][0] == {"id": 0, "name": "background", "color": "#3a7bff"}
    assert doc["classes"][1]["name"] == "membrane"
    assert [layer["kind"] for layer in doc["layers"]] == ["raw", "ground_truth"]
    assert doc["pyramid"]["z"] == [{"level": 0, "height": 512, "width": 512, "rows": 1, "cols": 1}]
    assert doc["pyramid"]["y"][0]["height"] == 5


def test_thumbnail_is_a_small_png_with_an_etag(site):
    http, _ = site
    reply = http.get(f"/api/v1/datasets/{DEMO_DATASET}/thumbnail.png")
    assert reply.status == 200 and reply.headers["Content-Type"] == "image/png"
    pixels = png_pixels(reply.body)
    assert pixels.shape == (128, 128) and pixels.std() > 10
    assert (
        http.get(
            f"/api/v1/datasets/{DEMO_DATASET}/thumbnail.png",
            headers={"If-None-Match": reply.headers["ETag"]},
        ).status
        == 304
    )


def test_models_projects_segmentations_and_problems(site):
    http, root = site
    datasets = http.get("/api/v1/datasets").json()
    assert [d["name"] for d in datasets] == [DEMO_DATASET]
    assert datasets[0]["viewer_url"] == f"/datasets/{DEMO_DATASET}"
    models = {m["name"]: m for m in http.get("/api/v1/models").json()}
    assert models["tiny-membrane"]["best_metrics"]["dice"] == 0.7
    assert http.get("/api/v1/models/tiny-membrane").json()["architecture"]["feature_maps"] == 4
    assert any(p["name"] == "Demo" for p in http.get("/api/v1/projects").json())
    assert http.get("/api/v1/segmentations").json() == []
    assert http.get(f"/api/v1/segmentations?dataset={DEMO_DATASET}").json() == []
    assert http.get("/api/v1/problems").json() == []
    (root / "setup.json").write_text('{"datasets": [', encoding="utf-8")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    problems = http.get("/api/v1/problems").json()
    assert problems and problems[0]["source"] == "setup.json"
    assert problems == http.get("/api/v1/dashboard").json()["problems"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/datasets/nope",
        "/api/v1/datasets/nope/thumbnail.png",
        "/api/v1/models/nope",
        f"/api/v1/datasets/{DEMO_DATASET}/segmentations/nope",
        "/api/v1/nothing-here",
    ],
)
def test_unknown_names_are_404_json(site, path):
    http, _ = site
    reply = http.get(path)
    assert reply.status == 404
    body = reply.json()
    assert set(body) == {"error", "field"} and body["error"]


def test_unknown_query_parameters_are_400_naming_them(site):
    http, _ = site
    reply = http.get("/api/v1/segmentations?datset=x")
    assert reply.status == 400 and reply.json()["field"] == "datset"
