"""Everything that stands between a request and the data: ``install_security(app, config)``.

One call from the application factory puts in place, in this order: the authentication and role
guard with CSRF checks (:mod:`~biosegment.webui.auth`), the bounds on request bodies and the
protective response headers (:mod:`~biosegment.webui.request_guard`), the audit of job actions
(:mod:`~biosegment.webui.job_audit`), the login pages and the accounts API, and the
security and error answers all of this adds to the OpenAPI document.
"""

from __future__ import annotations

from flask_openapi3 import OpenAPI

from biosegment.config import Config
from biosegment.webui import accounts_pages
from biosegment.webui.api import auth_routes
from biosegment.webui.api_document import install_document_completion
from biosegment.webui.auth import AUTH_EXTENSION_KEY, install_auth
from biosegment.webui.job_audit import install_job_audit
from biosegment.webui.request_guard import install_request_guard

__all__ = ["install_security"]


def auth_settings_for(app: OpenAPI):
    return app.extensions[AUTH_EXTENSION_KEY]


def install_security(app: OpenAPI, config: Config) -> None:
    install_auth(app, config)
    install_request_guard(app)
    install_job_audit(app)
    app.register_blueprint(accounts_pages.bp)
    app.register_api(auth_routes.api)
    install_document_completion(app, accounts=auth_settings_for(app).required)
