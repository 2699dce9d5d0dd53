"""Bounds on what a request may carry before any view parses it.

JSON bodies (job requests, new annotations, tokens) are small by nature: one larger than
:data:`MAX_JSON_BYTES` is refused with 413, and one nested deeper than :data:`MAX_JSON_DEPTH`
with 400, before a view or the request validator parses it. Thousands of nested brackets would
otherwise exhaust the parser's stack and surface as an internal error. Binary bodies (annotation
slices) keep the app-wide size bound and their own checks in the views. Every response also
carries headers that keep pages out of frames and stop browsers from guessing content types.
"""

from __future__ import annotations

import json

from flask import Flask, Response, request

from biosegment.webui.errors import ApiError

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


def _check_json_body() -> None:
    if request.method not in _WRITE_METHODS or not _is_json_request():
        return
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise ApiError(413, f"a JSON body may hold at most {MAX_JSON_BYTES} bytes", field="body")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(413, f"a JSON body may hold at most {MAX_JSON_BYTES} bytes", field="body")
    try:
        document = json.loads(raw) if raw else None
    except RecursionError:
        raise ApiError(
            400, f"JSON body nested too deeply (at most {MAX_JSON_DEPTH} levels)", field="body"
        ) from None
    except (ValueError, UnicodeDecodeError):
        return  # malformed JSON: the validator answers with the parser's own reason
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
