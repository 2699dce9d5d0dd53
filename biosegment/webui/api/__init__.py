"""The JSON API under ``/api/v1``: one flask-openapi3 blueprint per area of the product.

Each module's blueprint documents itself through its pydantic request models and view
docstrings; :func:`api_blueprints` lists them for the application factory.
"""

from __future__ import annotations

__all__ = ["api_blueprints", "API_PREFIX"]

API_PREFIX = "/api/v1"


def api_blueprints() -> list:
    from biosegment.webui.api import (annotation_routes, catalog_routes, job_routes,
                                      tile_routes)
    from biosegment.webui.api import comparison_routes, setup_routes
    # comparison first: its /tiles/difference/ rule must win over the generic /tiles/<kind>/
    return [comparison_routes.api, catalog_routes.api, tile_routes.api, annotation_routes.api,
            job_routes.api, setup_routes.api]
