"""The application factory: ``create_app(config)`` builds BioSegment's web UI for one data folder.

It wires the JSON API (``/api/v1``, documented by flask-openapi3 from the request models and view
docstrings, the document at ``/api/v1/openapi.json``), the interactive docs (``/docs``, Swagger UI
shipped inside the flask-openapi3-swagger package, so nothing comes from the network), the pages,
the error handlers and the request size bound. The same app runs under the daemon's waitress
server or alone in tests.
"""

from __future__ import annotations

from flask import jsonify
from flask_openapi3 import APIBlueprint, Info, OpenAPI
from flask_openapi3_swagger.templates import swagger_html_string

from biosegment import __version__
from biosegment.config import Config
from biosegment.volumes.limits import limits_from, set_volume_limits
from biosegment.webui import pages
from biosegment.webui.api import (
    API_PREFIX,
    annotation_routes,
    catalog_routes,
    comparison_routes,
    download_routes,
    item_routes,
    job_routes,
    live_routes,
    object_routes,
    region_routes,
    setup_routes,
    tile_routes,
)
from biosegment.webui.context import EXTENSION_KEY, WebState
from biosegment.webui.errors import register_error_handlers, validation_error_response
from biosegment.webui.security import install_security

__all__ = ["create_app", "DOCS_PREFIX", "OPENAPI_URL"]

DOCS_PREFIX = "/docs"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"


def _docs_page() -> str:
    """Swagger UI's page from the plugin package, pointed at our document (served locally)."""

    return (
        swagger_html_string.replace("{{doc_url}}", OPENAPI_URL)
        .replace("{{ swagger_config|default('{}')|tojson }}", '{"docExpansion": "list"}')
        .replace("{{ oauth_config|tojson }}", "null")
        .replace("<title>Swagger UI</title>", "<title>BioSegment API</title>")
        .replace("<body>", "<body>" + _BACK_TO_APP, 1)
    )


# Swagger UI's page is not one of ours: a bar at its top leads back to the app. The links get
# their addresses from the script, so the page's markup names no address outside /docs/.
_BACK_TO_APP = (
    '<nav id="back-to-app" style="font:14px sans-serif;padding:8px 16px;'
    'background:#1d2026;"><a data-to="app" style="color:#8ab4ff">&larr; BioSegment</a>'
    ' &middot; <a data-to="jobs" style="color:#8ab4ff">Jobs</a></nav><script>'
    'for (const a of document.querySelectorAll("#back-to-app a")) '
    'a.setAttribute("href", a.dataset.to === "app" ? "/" : "/jobs");</script>'
)


_OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _register_api(app: OpenAPI, api: APIBlueprint) -> None:
    """Register ``api``, keeping in the document the operations other blueprints gave its paths.

    flask-openapi3 replaces a path's entry with each blueprint's own, and a path may have its
    reads in one blueprint and its changes in another (``GET /models/{model}`` reads the
    catalog; ``DELETE`` there is a change that needs its own permission, so its own blueprint).
    """
    before = dict(app.paths)
    app.register_api(api)
    for path, earlier in before.items():
        merged = app.paths[path]
        if merged is earlier:
            continue
        for operation in _OPERATIONS:
            if getattr(merged, operation) is None and getattr(earlier, operation) is not None:
                setattr(merged, operation, getattr(earlier, operation))


def create_app(config: Config, *, jobs: object | None = None) -> OpenAPI:
    """Build the app for ``config.data_dir``.

    ``jobs`` is the job service (or its class, built with ``config`` on first use); by default
    :class:`biosegment.tasks.service.JobService` is built when a job request first needs it.
    """
    app = OpenAPI(
        __name__,
        info=Info(
            title="BioSegment API",
            version=__version__,
            description="Datasets, models, annotations, tiles and jobs of one BioSegment "
            "data folder.",
        ),
        doc_prefix=DOCS_PREFIX,
        doc_url="/openapi.json",
        validation_error_status=400,
        validation_error_callback=validation_error_response,
    )

    set_volume_limits(limits_from(config.limits))  # what the app's readers believe of headers
    app.config["MAX_CONTENT_LENGTH"] = config.server.max_request_mb * 2**20
    app.config["OPENAPI_HTML_STRING"] = _docs_page()
    app.extensions[EXTENSION_KEY] = WebState(config, jobs=jobs)
    register_error_handlers(app, root=config.data_dir)
    # comparison first: its /tiles/difference/ rule must win over the generic /tiles/<kind>/
    for routes in (
        comparison_routes,
        catalog_routes,
        tile_routes,
        annotation_routes,
        item_routes,
        job_routes,
        live_routes,
        object_routes,
        region_routes,
        setup_routes,
        download_routes,
    ):
        _register_api(app, routes.api)
    app.add_url_rule(OPENAPI_URL, "openapi_document", lambda: jsonify(app.api_doc))
    install_security(app, config)  # logins beyond 127.0.0.1, CSRF, request bounds (SPEC 8)

    app.register_blueprint(pages.bp)
    return app
