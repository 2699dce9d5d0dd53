"""Small HTTP helpers the API views share: conditional responses, request bodies, and the check
that a voxel asked for lies inside its volume.

Tiles, thumbnails and the dashboard answer ``If-None-Match`` with 304, so a polling page or a
browser revisiting a tile costs a fingerprint check instead of a render. Raw request bodies are
read with the configured size bound, and gzip bodies (what the annotation editor sends for large
slices) are inflated without ever growing past that bound.
"""

from __future__ import annotations

import hashlib
import json
import zlib

from flask import Response, current_app, request

from biosegment.webui.errors import ApiError

__all__ = ["etag_for", "conditional", "json_conditional", "read_body", "require_voxel_inside"]


def etag_for(*parts: object) -> str:
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=12)
    return digest.hexdigest()


def conditional(etag: str, make_body, *, mimetype: str, cache_control: str) -> Response:
    """304 when the client holds ``etag``; otherwise the body ``make_body()`` returns."""
    if etag in request.if_none_match:
        response = Response(status=304)
    else:
        response = Response(make_body(), mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    return response


def json_conditional(document: object) -> Response:
    """A JSON document with a content ETag, so pollers get 304 while nothing changed."""
    body = json.dumps(document, sort_keys=True, default=str, ensure_ascii=False)
    return conditional(
        etag_for(body), lambda: body, mimetype="application/json", cache_control="no-cache"
    )


def read_body(*, field: str = "body") -> bytes:
    """The request body, inflated when sent with ``Content-Encoding: gzip``, within the bound."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    raw = request.get_data(cache=False)
    encoding = (request.headers.get("Content-Encoding") or "").lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise ApiError(
            415,
            f"unsupported Content-Encoding {encoding!r}; send gzip or nothing",
            field="Content-Encoding",
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid gzip: {exc}", field=field) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise ApiError(413, "inflated body exceeds the request size limit", field=field)
    return data


def require_voxel_inside(shape: tuple[int, ...], z: int, y: int, x: int) -> None:
    """400 naming the axis when ``(z, y, x)`` lies outside a volume of ``shape``."""
    for axis, value, size in zip("zyx", (z, y, x), shape):
        if value >= size:
            raise ApiError(400, f"{axis}={value} is outside 0..{size - 1}", field=axis)
