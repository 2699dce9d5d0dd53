"""Web UI pages: each page is served, refers only to local scripts, and escapes names."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, make_tiny_model, serve

HOSTILE = "<img src=x onerror=alert(1)>&"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("pages") / "data")
    make_tiny_model(root)
    folder = root / "EM" / HOSTILE
    folder.mkdir()
    tifffile.imwrite(
        folder / "stack.tif", np.zeros((2, 64, 64), np.uint8), photometric="minisblack"
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        yield Http(server.url)


@pytest.mark.parametrize(
    "path, marker",
    [
        ("/", 'id="dashboard"'),
        (f"/datasets/{DEMO_DATASET}", 'id="viewer"'),
        ("/jobs", 'id="jobs-page"'),
        ("/models/tiny-membrane", 'id="model-page"'),
    ],
)
def test_pages_are_served_with_local_assets_only(site, path, marker):
    reply = site.get(path)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    html = reply.body.decode()
    assert marker in html
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^(https?:)?//", asset), f"{asset} would need the network"
        if asset.startswith("/static/"):
            assert site.get(asset).status == 200, asset


def test_every_script_imports_only_local_modules(site):
    html = site.get(f"/datasets/{DEMO_DATASET}").body.decode()
    pending = re.findall(r'src="(/static/js/[^"]+)"', html)
    seen = set()
    while pending:
        script = pending.pop()
        if script in seen:
            continue
        seen.add(script)
        reply = site.get(script)
        assert reply.status == 200 and "javascript" in reply.headers["Content-Type"]
        for module in re.findall(r'from "([^"]+)"', reply.body.decode()):
            assert module.startswith("./"), f"{script} imports {module}"
            pending.append(script.rsplit("/", 1)[0] + "/" + module[2:])
    assert {"/static/js/viewer.js", "/static/js/tiled_view.js", "/static/js/annotator.js"} <= seen


def test_names_from_the_data_folder_are_escaped(site):
    from urllib.parse import quote

    reply = site.get("/datasets/" + quote(HOSTILE, safe=""))
    assert reply.status == 200
    html = reply.body.decode()
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;&amp;" in html


def test_unknown_pages_are_404(site):
    assert site.get("/datasets/nope").status == 404
    assert site.get("/models/nope").status == 404
    missing = site.get("/datasets/" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert missing.status == 404 and b"<script>" not in missing.body
