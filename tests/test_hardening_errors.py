"""Bad input gets the right status and a reason naming the file or field, never a 500.

Files come from the corpus (tests/data/bad/uploads, reads, volumes); everything is sent over
real HTTP to the app served by waitress.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, serve

BAD = Path(__file__).resolve().parent / "data" / "bad"
ANNOTATIONS = f"/api/v1/datasets/{DEMO_DATASET}/annotations"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("errors") / "data")
    shutil.copy(BAD / "reads" / "lying-deflate.tif", root / "EM" / "lying.tif")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.dataset("lying")["state"] == "ok"  # its header is sound
    with serve(config_for(root)) as server:
        http = Http(server.url)
        assert http.post(ANNOTATIONS, json_body={"name": "painted"}).status in (200, 201)
        yield root, http


@pytest.mark.parametrize(
    "item, status, words",
    [
        ("png-bomb.png", 413, "too many pixels"),
        ("ztxt-bomb.png", 400, "not a readable PNG"),
    ],
)
def test_png_bombs_in_an_annotation_upload_are_refused(site, item, status, words):
    _, http = site
    reply = http.put(
        f"{ANNOTATIONS}/painted/slices/0",
        body=(BAD / "uploads" / item).read_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert reply.status == status, reply.body
    assert reply.json()["field"] == "body" and words in reply.json()["error"]


def test_a_tiff_whose_compressed_data_lies_is_named_when_read(site):
    _, http = site
    for path in (
        "/api/v1/datasets/lying/tiles/raw/z/0/0/0/0.png",
        "/api/v1/datasets/lying/voxel?z=1&y=2&x=3",
    ):
        reply = http.get(path)
        assert reply.status == 400, (path, reply.status, reply.body[:300])
        assert reply.json()["error"].startswith("EM/lying.tif: page "), reply.json()


@pytest.mark.parametrize(
    "name", ["con", "NUL", "nul.txt", "Com1", "lpt9.tar.gz", "trailing.", " padded"]
)
def test_names_windows_cannot_hold_are_refused(site, name):
    root, http = site
    reply = http.post(ANNOTATIONS, json_body={"name": name})
    assert reply.status == 400 and reply.json()["field"] == "name", reply.body
    assert not (root / "annotations" / DEMO_DATASET / name).exists()


def test_the_openapi_document_carries_the_name_rule(site):
    _, http = site
    document = http.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    rule = schemas["NewAnnotation"]["properties"]["name"]
    assert rule["maxLength"] == 100 and rule["minLength"] == 1
    pattern = re.compile(rule["pattern"])
    assert pattern.match("mito scribbles_2") and not pattern.match("nul.txt")
    assert not pattern.match("a..b") and not pattern.match("trailing.")


def test_setup_json_cannot_take_over_what_the_ui_created(site):
    root, http = site
    before = http.get(f"{ANNOTATIONS}/painted").json()
    assert before["origin"] == "ui"
    setup = root / "setup.json"
    original = setup.read_bytes() if setup.exists() else None
    setup.write_text(
        json.dumps(
            {
                "EM_location": "EM",
                "annotations": [
                    {
                        "title": "painted",
                        "dataset": DEMO_DATASET,
                        "location": f"annotations/{DEMO_DATASET}/painted",
                    },
                    {
                        "title": "alias",
                        "dataset": DEMO_DATASET,
                        "location": f"annotations/{DEMO_DATASET}/painted",
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    try:
        with open_catalog(root) as catalog:
            refresh(catalog, root)
            problems = catalog.problems(reported_by="setup.json")
            row = catalog.annotation(DEMO_DATASET, "painted")
            names = [a["name"] for a in catalog.annotations(DEMO_DATASET)]
    finally:
        if original is None:
            setup.unlink()
        else:
            setup.write_bytes(original)
    assert row["origin"] == "ui", row
    assert "alias" not in names
    reasons = {p["where"]: p["reason"] for p in problems}
    assert "created in the web UI" in reasons["annotations[0]"], problems
    assert "created in the web UI" in reasons["annotations[1]"], problems


def test_a_method_the_route_does_not_have_answers_405_with_allow(site):
    _, http = site
    reply = http.request("TRACE", "/api/v1/datasets")
    assert reply.status == 405 and "GET" in reply.headers["Allow"], dict(reply.headers)
    assert reply.json()["error"]
