"""No content type leads around the bounds on request bodies.

A view that takes a JSON body answers 415 to anything not sent as JSON, before reading it, so
bodies that are too large or nested too deeply are refused whatever their ``Content-Type``
says; a viewer's token reaches such a view too (``POST /api/v1/auth/tokens``).
"""

from __future__ import annotations

import dataclasses

import pytest

from biosegment.accounts import open_accounts
from biosegment.config import ServerConfig
from biosegment.webui.request_guard import MAX_JSON_BYTES
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, serve

DEEP = b"[" * 100_000
ANNOTATIONS = f"/api/v1/datasets/{DEMO_DATASET}/annotations"


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("bodies") / "data")
    with serve(config_for(root)) as server:
        yield Http(server.url)


@pytest.fixture(scope="module")
def exposed(tmp_path_factory):
    """Accounts mode (127.0.0.2) and a viewer's API token."""
    root = make_demo_folder(tmp_path_factory.mktemp("bodies-exposed") / "data")
    with open_accounts(root) as accounts:
        accounts.add_user("ada", "admin", "a long enough password")
        accounts.add_user("vic", "viewer", "a long enough password")
        token, _ = accounts.create_token("vic", "scripts")
    config = dataclasses.replace(config_for(root), server=ServerConfig(host="127.0.0.2", port=0))
    with serve(config) as server:
        yield Http(server.url), {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("path", ["/api/v1/jobs/segment", ANNOTATIONS])
def test_deep_brackets_sent_as_another_type_are_refused_unread(local, path, content_type):
    reply = local.post(path, body=DEEP, headers={"Content-Type": content_type})
    assert reply.status == 415, (reply.status, reply.body[:300])
    answer = reply.json()
    assert answer["field"] == "body"
    assert content_type in answer["error"] and "application/json" in answer["error"]
    assert local.get("/api/v1/datasets").status == 200


def test_a_viewer_cannot_crash_the_token_view_with_a_plain_text_body(exposed):
    http, viewer = exposed
    for body in (DEEP, b"x" * (MAX_JSON_BYTES + 1)):
        reply = http.post(
            "/api/v1/auth/tokens", body=body, headers={**viewer, "Content-Type": "text/plain"}
        )
        assert reply.status == 415, (reply.status, reply.body[:300])
    made = http.post("/api/v1/auth/tokens", json_body={"label": "ok"}, headers=viewer)
    assert made.status == 201, made.body


def test_a_body_far_past_the_json_bound_is_refused_whatever_its_type(local):
    big = b"[" * (8 * MAX_JSON_BYTES)
    for content_type in ("text/plain", "application/octet-stream", "application/json"):
        reply = local.post(ANNOTATIONS, body=big, headers={"Content-Type": content_type})
        assert reply.status in (413, 415), (content_type, reply.status, reply.body[:300])
        assert reply.json()["field"] == "body"


def test_a_body_without_a_content_type_is_refused_and_no_body_still_explained(local):
    typeless = local.post("/api/v1/jobs/segment", body=DEEP, headers={"Content-Type": ""})
    assert typeless.status == 415, (typeless.status, typeless.body[:300])
    assert "without a Content-Type" in typeless.json()["error"]
    empty = local.post("/api/v1/jobs/segment")
    assert empty.status == 400 and empty.json() == {
        "error": "a JSON object is required",
        "field": "body",
    }


def test_json_bodies_keep_their_bounds_and_reasons(local):
    deep = local.post(ANNOTATIONS, body=DEEP, headers={"Content-Type": "application/json"})
    assert deep.status == 400 and "nested too deeply" in deep.json()["error"]
    broken = local.post(
        ANNOTATIONS, body=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status == 400 and broken.json()["error"].startswith("malformed JSON")
    made = local.post(ANNOTATIONS, json_body={"name": "kept"})
    assert made.status == 201, made.body
