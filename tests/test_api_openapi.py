"""API: the OpenAPI 3 document covers every endpoint, and the interactive docs work offline."""

from __future__ import annotations

import re

import pytest

from biosegment.webui import create_app
from webui_fixtures import Http, config_for, make_demo_folder, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("openapi") / "data")
    config = config_for(root)
    with serve(config) as server:
        yield Http(server.url), create_app(config)


def flask_rule_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_api_route_is_documented_with_a_summary(site):
    http, app = site
    document = http.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.") and document["info"]["title"] == "BioSegment API"
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "openapi_document":
            methods = {m.lower() for m in rule.methods} - {"head", "options"}
            routes[flask_rule_to_openapi(rule.rule)] = methods
    assert len(routes) >= 20
    for path, methods in routes.items():
        assert path in document["paths"], f"{path} is missing from the OpenAPI document"
        for method in methods:
            operation = document["paths"][path][method]
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_request_bodies_and_parameters_come_from_the_code(site):
    http, _ = site
    document = http.get("/api/v1/openapi.json").json()
    train = document["paths"]["/api/v1/jobs/train"]["post"]
    schema_ref = train["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"dataset", "annotation", "base_model", "epochs", "name"} <= set(schema["properties"])
    tile = document["paths"][
        "/api/v1/datasets/{dataset}/tiles/{kind}/{axis}/{index}/{level}/{row}/{col}.png"
    ]["get"]
    assert {p["name"] for p in tile["parameters"]} >= {"dataset", "kind", "axis", "level", "name"}
    put = document["paths"]["/api/v1/datasets/{dataset}/annotations/{name}/slices/{z}"]["put"]
    assert set(put["requestBody"]["content"]) == {"application/octet-stream", "image/png"}
    assert http.get("/docs/openapi.json").json()["paths"] == document["paths"]


def test_interactive_docs_load_only_local_assets(site):
    http, _ = site
    assert http.get("/docs").status == 200  # redirected to /docs/
    page = http.get("/docs/")
    assert page.status == 200
    html = page.body.decode()
    assert "/api/v1/openapi.json" in html and "SwaggerUIBundle" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the docs page should load its scripts and styles"
    for asset in assets:
        assert not re.match(r"^(https?:)?//", asset), f"{asset} would need the network"
        assert http.get("/docs/" + asset).status == 200, asset
