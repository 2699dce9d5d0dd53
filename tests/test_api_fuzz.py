"""A bounded schemathesis fuzz run against the app's own OpenAPI document: no answer is a 500,
and every answer's status, content type and body are what the document says.

Both modes are fuzzed over real HTTP: 127.0.0.1 without a login, and 127.0.0.2 with accounts
(an admin's API token on every call). Path parameters are drawn mostly from things that exist
(the demo dataset, a model, an annotation, a job), so requests get past "not found" into the
views' real work; the rest is whatever Hypothesis makes of the schemas. A longer run:
``python benchmarks/fuzz_api.py --examples 500``.
"""

from __future__ import annotations

import dataclasses

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from biosegment.accounts import open_accounts
from biosegment.catalog import open_catalog
from biosegment.config import ServerConfig
from webui_fixtures import DEMO_DATASET, config_for, make_demo_folder, make_tiny_model, serve

#: Examples per operation: ~30 operations x 2 modes stay well under a minute on 2 cores.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz_config(job_id: str):
    """Draw path parameters mostly from names that exist, so views do real work."""
    known = {
        "datasets": [DEMO_DATASET],
        "models": ["tiny-membrane"],
        "names": ["scribbles"],
        "jobs": [job_id],
        "small": [0, 1, 2],
    }
    return schemathesis.config.SchemathesisConfig.from_dict(
        {
            "dictionaries": {name: {"values": values} for name, values in known.items()},
            "parameters": {
                "path.dataset": {"dictionary": "datasets", "probability": 0.8},
                "path.model": {"dictionary": "models", "probability": 0.8},
                "path.name": {"dictionary": "names", "probability": 0.7},
                "path.job_id": {"dictionary": "jobs", "probability": 0.8},
                "path.index": {"dictionary": "small", "probability": 0.7},
                "path.z": {"dictionary": "small", "probability": 0.7},
                "path.level": {"dictionary": "small", "probability": 0.7},
                "path.row": {"dictionary": "small", "probability": 0.7},
                "path.col": {"dictionary": "small", "probability": 0.7},
                "body.dataset": {"dictionary": "datasets", "probability": 0.7},
                "body.model": {"dictionary": "models", "probability": 0.7},
                "body.annotation": {"dictionary": "names", "probability": 0.5},
            },
        }
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("fuzz") / "data")
    make_tiny_model(root)
    (root / "annotations" / DEMO_DATASET / "scribbles").mkdir(parents=True)
    (root / "annotations" / DEMO_DATASET / "scribbles" / "annotation.json").write_text(
        '{"classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}]}'
    )
    with open_catalog(root) as catalog:
        from biosegment.catalog import refresh

        refresh(catalog, root)
        job = catalog.create_job("segment", {"dataset": DEMO_DATASET, "model": "tiny-membrane"})
    with open_accounts(root) as accounts:
        accounts.add_user("fuzzer", "admin", "a long enough password")
        token, _ = accounts.create_token("fuzzer", "fuzz")
    return root, job["id"], token


@pytest.fixture(scope="module")
def open_site(folder):
    root, job_id, _ = folder
    with serve(config_for(root)) as server:
        yield server.url, job_id


@pytest.fixture(scope="module")
def exposed_site(folder):
    root, job_id, token = folder
    config = dataclasses.replace(config_for(root), server=ServerConfig(host="127.0.0.2", port=0))
    with serve(config) as server:
        yield server.url, job_id, token


@pytest.fixture(scope="module")
def open_schema(open_site):
    url, job_id = open_site
    return schemathesis.openapi.from_url(url + "api/v1/openapi.json", config=fuzz_config(job_id))


@pytest.fixture(scope="module")
def exposed_schema(exposed_site):
    url, job_id, token = exposed_site
    return schemathesis.openapi.from_url(
        url + "api/v1/openapi.json",
        config=fuzz_config(job_id),
        headers={"Authorization": f"Bearer {token}"},
    )


bounded = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz(schema, headers: dict | None = None) -> int:
    """Run every operation's bounded examples; fail listing each operation that broke."""
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @bounded
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(checks=CHECKS, headers=headers)

        try:
            check()
        except Exception as failure:  # one operation's failure must not hide the others'
            failures.append(f"{operation.method.upper()} {operation.path}:\n{failure}")
    assert not failures, "\n\n".join(failures)
    return operations


def test_the_local_api_keeps_to_its_document(open_schema):
    assert fuzz(open_schema) >= 30


def test_the_exposed_api_keeps_to_its_document(exposed_schema, exposed_site):
    _, _, token = exposed_site
    assert fuzz(exposed_schema, {"Authorization": f"Bearer {token}"}) >= 30


def test_the_document_declares_how_to_authenticate(exposed_site, open_site):
    import json
    import urllib.request

    exposed = json.load(
        urllib.request.urlopen(
            urllib.request.Request(
                exposed_site[0] + "api/v1/openapi.json",
                headers={"Authorization": f"Bearer {exposed_site[2]}"},
            )
        )
    )
    assert exposed["security"] == [{"apiToken": []}, {"session": []}]
    assert set(exposed["components"]["securitySchemes"]) == {"apiToken", "session"}
    segment = exposed["paths"]["/api/v1/jobs/segment"]["post"]["responses"]
    assert {"401", "403", "413"} <= set(segment)
    local = json.load(urllib.request.urlopen(open_site[0] + "api/v1/openapi.json"))
    assert "security" not in local
    assert "401" not in local["paths"]["/api/v1/datasets"]["get"]["responses"]
