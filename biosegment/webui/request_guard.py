"""Bounds on what a request may carry before any view parses it.

JSON bodies (job requests, new annotations, tokens) are small by nature: one larger than
:data:`MAX_JSON_BYTES` is refused with 413, and one nested deeper than :data:`MAX_JSON_DEPTH`
with 400, before a view or the request validator parses it. Thousands of nested brackets would
otherwise exhaust the parser's stack and surface as an internal error. A view that takes a JSON
body (a ``body`` model) gets nothing else: any other content type is refused with 415 before a
byte of the body is read, so no content type leads around these bounds. The outcome of the one
parse is kept for the error explainer (:mod:`biosegment.webui.errors`), which never parses a
body itself. Binary bodies (annotation slices) keep the app-wide size bound and their own checks
in the views. Every response also carries headers that keep pages out of frames and stop
browsers from guessing content types.
"""

from __future__ import annotations

import functools
import inspect
import json

from flask import Flask, Response, current_app, g, request

from biosegment.webui.errors import BODY_PROBLEM, ApiError

__all__ = ["install_request_guard", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "json_depth"]

MAX_JSON_BYTES = 1 * 2**20
MAX_JSON_DEPTH = 32
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def json_depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth) for child in children)
    return deepest


def _is_json_request() -> bool:
    mimetype = (request.mimetype or "").lower()
    return mimetype == "application/json" or mimetype.endswith("+json")


@functools.cache
def _takes_json_body(view) -> bool:
    """Whether a view validates a JSON body (flask-openapi3 passes it as ``body``)."""
    try:
        return "body" in inspect.signature(view).parameters
    except (TypeError, ValueError):  # a builtin or an object without a signature
        return False


def _refuse_other_content_types() -> None:
    """415 for a body a JSON view would not read as JSON, before any of it is read."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or not _takes_json_body(view):
        return
    sent = (request.mimetype or "").lower()
    if not sent and not request.content_length:
        return  # no body at all: the validator says a JSON object is required
    described = f"Content-Type {sent!r}" if sent else "a body without a Content-Type"
    raise ApiError(
        415, f"{described} is not accepted here; send Content-Type: application/json", field="body"
    )


def _check_json_body() -> None:
    if request.method not in _WRITE_METHODS:
        return
    if not _is_json_request():
        _refuse_other_content_types()
        return
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise ApiError(413, f"a JSON body may hold at most {MAX_JSON_BYTES} bytes", field="body")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, f"a JSON body may hold at most {MAX_JSON_BYTES} bytes", field="body")
    if not raw:
        setattr(g, BODY_PROBLEM, "a JSON object is required")
        return
    try:
        document = json.loads(raw)
    except RecursionError:
        raise ApiError(
            400, f"JSON body nested too deeply (at most {MAX_JSON_DEPTH} levels)", field="body"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        # the validator answers; the explainer says why, with the parser's own reason
        setattr(g, BODY_PROBLEM, f"malformed JSON: {exc}")
        return
    if json_depth(document) > MAX_JSON_DEPTH:
        raise ApiError(
            400, f"JSON body nested too deeply (at most {MAX_JSON_DEPTH} levels)", field="body"
        )


def _protective_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy", "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
    )
    return response


def install_request_guard(app: Flask) -> None:
    app.before_request(_check_json_body)
    app.after_request(_protective_headers)
