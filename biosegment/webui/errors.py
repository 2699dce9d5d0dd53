"""How the API reports bad requests: one JSON shape, ``{"error": ..., "field": ...}``.

Views raise :class:`ApiError` (or let BioSegment's own errors through); the handlers registered by
:func:`register_error_handlers` turn every failure under ``/api/`` into that JSON with the right
status, so a script always gets a readable reason and the name of the field to fix. Pages keep
Flask's HTML error pages.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from flask import Flask, Response, g, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from biosegment.catalog.probe import describe_error
from biosegment.errors import InputError, NotFoundError, PathEscapeError, StateError, VolumeError
from biosegment.webui.layers import LayerConflict, LayerError, OutsideLayer

__all__ = [
    "ApiError",
    "BODY_PROBLEM",
    "register_error_handlers",
    "validation_error_response",
    "error_response",
]

log = logging.getLogger(__name__)

#: Where the request guard (:mod:`biosegment.webui.request_guard`) leaves, on ``flask.g``, why
#: a JSON body did not parse; the explainer below reads it instead of parsing the body again.
BODY_PROBLEM = "biosegment_body_problem"


class ApiError(Exception):
    """A refused request: HTTP ``status``, a readable ``message``, the ``field`` at fault."""

    def __init__(self, status: int, message: str, *, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(status: int, message: str, field: str | None = None) -> Response:
    response = jsonify({"error": message, "field": field})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _malformed_json_reason() -> str | None:
    """Why the request body is not JSON, as the request guard found when it parsed it (within
    its bounds), or None when it parsed. Never reads or parses the body here."""
    reason = g.get(BODY_PROBLEM)
    if reason is None and not request.content_length and not request.mimetype:
        return "a JSON object is required"
    return reason


def validation_error_response(error: ValidationError) -> Response:
    """flask-openapi3's hook: pydantic errors become a 400 naming the first bad field."""
    problems = error.errors(include_url=False)
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ())]
    if not location and request.method in ("POST", "PUT", "PATCH"):
        reason = _malformed_json_reason()
        if reason:
            return error_response(400, reason, "body")
    field = ".".join(location) or "body"
    return error_response(400, f"{field}: {first.get('msg', 'invalid value')}", field)


def _volume_problem(root: Path | None, exc: InputError) -> str:
    """``EM/a.tif: page 3: reason``, the file relative to the data folder (never absolute)."""

    if root is None:
        return exc.reason
    text = describe_error(root, exc)
    if exc.source and Path(exc.source).is_absolute() and text.startswith(exc.source):
        text = Path(exc.source).name + text[len(exc.source) :]  # outside the folder: name only
    return text


def register_error_handlers(app: Flask, *, root: Path | None = None) -> None:
    """Answer every failure as JSON (under ``/api/``); ``root``, the data folder, lets errors
    about files name them relative to it."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.field)

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError):
        if not _wants_json():
            return Response(f"Not found: {html.escape(str(exc))}", status=404, mimetype="text/html")
        return error_response(404, str(exc), None)

    @app.errorhandler(LayerError)
    def _layer_error(exc: LayerError):
        # The layer store's errors, as HTTP: a plane beyond the volume is not there; files
        # that disagree with each other are a conflict the request cannot fix.
        status = {OutsideLayer: 404, LayerConflict: 409}.get(type(exc), 400)
        return error_response(status, exc.reason, exc.where)

    @app.errorhandler(StateError)
    def _state_error(exc: StateError):
        return error_response(409, exc.reason, exc.where)

    @app.errorhandler(InputError)
    def _input_error(exc: InputError):
        if isinstance(exc, (VolumeError, PathEscapeError)):
            # a file that cannot be read: say which one (relative to the data folder)
            return error_response(400, _volume_problem(root, exc), exc.where)
        return error_response(400, exc.reason, exc.where)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not _wants_json():
            return exc
        field = "body" if exc.code == 413 else None
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body too large: {message}"
        response = error_response(exc.code or 500, message, field)
        allowed = getattr(exc, "valid_methods", None)
        if exc.code == 405 and allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))  # RFC 9110 requires it
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error serving %s", request.path)
        if not _wants_json():
            return Response(
                "Internal error; see the BioSegment log.", status=500, mimetype="text/plain"
            )
        return error_response(500, f"internal error: {type(exc).__name__}", None)
