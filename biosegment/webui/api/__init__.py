"""The JSON API under ``/api/v1``: one flask-openapi3 blueprint per area of the product.

Each ``*_routes`` module's blueprint documents itself through its pydantic request models and
view docstrings; the application factory (:func:`biosegment.webui.app.create_app`) imports and
registers each one.
"""

from __future__ import annotations

__all__ = ["API_PREFIX"]

API_PREFIX = "/api/v1"
