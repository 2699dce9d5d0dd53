"""Complete the OpenAPI document with what the security layer adds to every operation.

flask-openapi3 documents each view from its own declarations. This adds, when the document is
generated: the 200 of views that declared only their errors; the security schemes (API token,
session cookie) and, beyond 127.0.0.1, that every operation needs one of them, with its 401
and 403 answers; the 403 a cross-site change gets on 127.0.0.1 too; the 413 and 415 of a
request body too large or of the wrong type; and the one error shape every ``/api/`` failure
has, ``{"error": ..., "field": ...}``, for every 4xx and 5xx answer. Clients and fuzzers
(``tests/test_api_fuzz.py``) can then hold the API to its document.
"""

from __future__ import annotations

from typing import Any

from flask_openapi3 import OpenAPI

from biosegment.webui.api_text import plain_description
from biosegment.webui.auth import CSRF_HEADER, SESSION_COOKIE_NAME

__all__ = [
    "complete_api_document",
    "install_document_completion",
    "ERROR_SCHEMA",
    "SECURITY_SCHEMES",
]

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "what is wrong, for a person to read"},
        "field": {
            "type": ["string", "null"],
            "description": "the request field, header or path part at fault",
        },
    },
    "required": ["error", "field"],
}
SECURITY_SCHEMES = {
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "a per-user API token: biosegment users token NAME",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE_NAME,
        "description": f"the web UI's login; changes also need the {CSRF_HEADER} header",
    },
}
_WRITE_METHODS = {"post", "put", "patch", "delete"}
_ADDED = {
    401: "Not logged in: send an API token or log in",
    403: "Not allowed: the role lacks the permission, the CSRF token is missing, or the "
    "request came from another site",
    413: "Request body too large",
    415: "Request body of a type or encoding the operation does not take",
}


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}


def complete_api_document(document: dict[str, Any], *, accounts: bool) -> dict[str, Any]:
    """Add security and error responses to ``document`` in place; returns it."""
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["ApiError"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    if accounts:
        document["security"] = [{"apiToken": []}, {"session": []}]
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                continue
            if isinstance(operation.get("description"), str):
                operation["description"] = plain_description(operation["description"])
            responses = operation.setdefault("responses", {})
            if not any(str(status)[0] in "23" for status in responses):
                # A view that declared only its errors still answers 200 when all is well.
                responses["200"] = {"description": "OK"}
            added = []
            if accounts:
                added += [401, 403]
            if method in _WRITE_METHODS:
                added.append(403)
            if "requestBody" in operation:
                added += [413, 415]
            for status in added:
                responses.setdefault(str(status), {"description": _ADDED[status]})
            for status, response in responses.items():
                if str(status)[0] in "45":
                    response["content"] = _error_content()
    return document


def install_document_completion(app: OpenAPI, *, accounts: bool) -> None:
    """Complete the document each time flask-openapi3 generates it (routes registered after
    this call are covered too)."""
    generate = app.generate_spec_json

    def generate_completed() -> None:
        generate()
        complete_api_document(app.spec_json, accounts=accounts)

    app.generate_spec_json = generate_completed
