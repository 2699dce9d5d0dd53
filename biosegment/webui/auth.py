"""Who is asking, and may they: authentication, roles and CSRF for every request (SPEC 8).

The mode follows the address the server listens on. On 127.0.0.1 (see
:mod:`biosegment.accounts.exposure`) nobody logs in and every request acts as the desktop user
``local``; requests must still name a loopback ``Host`` (so a web page cannot reach the UI
through DNS rebinding) and state-changing ones must not come from another origin. On any other
address every request except the login form and static assets must be authenticated, by an API
token (``Authorization: Bearer ...``) or by a session cookie, and the person's role must allow
the endpoint (:mod:`biosegment.webui.access_policy`). A state-changing request made with a
session must echo the session's CSRF token, in the ``X-CSRF-Token`` header or a ``csrf_token``
form field; token requests carry no ambient credentials and need none. Refusals are 401 (who
are you?) or 403 (not you, or not like this), as JSON under ``/api/`` and as pages elsewhere.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, render_template, request, session

from biosegment.accounts import LOCAL_ACTOR, is_loopback, open_accounts, role_allows
from biosegment.config import Config
from biosegment.secret_store import ensure_secrets
from biosegment.webui.access_policy import PUBLIC_ENDPOINTS, SAFE_METHODS, required_permission
from biosegment.webui.errors import error_response

__all__ = [
    "install_auth",
    "AuthSettings",
    "current_user",
    "request_accounts",
    "auth_settings",
    "login_csrf_token",
    "safe_next_path",
    "AUTH_EXTENSION_KEY",
    "CSRF_HEADER",
    "CSRF_FIELD",
    "SESSION_COOKIE_NAME",
]

AUTH_EXTENSION_KEY = "biosegment_auth"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE_NAME = "biosegment_session"
_LOCAL_USER = {"id": None, "name": LOCAL_ACTOR, "role": "admin"}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    required: bool  #: accounts mode: the server is reachable beyond this machine
    root: Path  #: the data folder, whose accounts database answers


def auth_settings() -> AuthSettings:
    return current_app.extensions[AUTH_EXTENSION_KEY]


def request_accounts():
    """The accounts database, opened once per request that needs it and closed after."""
    if "biosegment_accounts" not in g:
        g.biosegment_accounts = open_accounts(auth_settings().root)
    return g.biosegment_accounts


def current_user() -> dict[str, Any] | None:
    """The person behind this request (``local`` on 127.0.0.1), or None before login."""
    return g.get("biosegment_user")


def _close_accounts(_exc=None) -> None:
    accounts = g.pop("biosegment_accounts", None)
    if accounts is not None:
        accounts.close()


# -- refusals ------------------------------------------------------------------------------


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _refuse(status: int, message: str) -> Response:
    if _wants_json():
        response = error_response(status, message, None)
    elif status == 401:
        response = Response(
            render_template(
                "accounts/login.html",
                error=None,
                next_path=safe_next_path(request.full_path),
                login_csrf=login_csrf_token(),
            ),
            status=401,
            mimetype="text/html",
        )
    else:
        response = Response(
            render_template("accounts/refused.html", message=message),
            status=status,
            mimetype="text/html",
        )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="BioSegment"'
    response.headers["Cache-Control"] = "no-store"
    return response


def safe_next_path(target: str | None) -> str:
    """A local path to go to after logging in; anything else (another site) becomes ``/``."""
    target = (target or "/").rstrip("?") or "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/"
    return target


def login_csrf_token() -> str:
    """The pre-login CSRF token, kept in the signed session cookie until the login succeeds."""
    if "login_csrf" not in session:
        session["login_csrf"] = secrets.token_urlsafe(32)
    return session["login_csrf"]


# -- checks --------------------------------------------------------------------------------


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _foreign_origin() -> str | None:
    """Why this state-changing request looks cross-site, or None when it does not."""
    if request.method in SAFE_METHODS:
        return None
    if (request.headers.get("Sec-Fetch-Site") or "").lower() == "cross-site":
        return "cross-site request refused"
    origin = request.headers.get("Origin")
    if origin is None:
        return None  # scripts and older browsers send none; sessions still need the CSRF token
    parts = urlsplit(origin)
    if origin == "null" or parts.netloc.lower() != (request.host or "").lower():
        return f"request from another origin ({origin}) refused"
    return None


def _check_local_request() -> Response | None:
    if not is_loopback(_host_name(request.host or "")):
        return _refuse(
            403,
            "this BioSegment listens on 127.0.0.1 only; use "
            "http://127.0.0.1:<port>/ (unexpected Host header)",
        )
    reason = _foreign_origin()
    return None if reason is None else _refuse(403, reason)


def _identify() -> tuple[dict | None, str, str]:
    """``(user, how, csrf token)``; ``how`` is "token", "session" or "" (nobody)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":
            return None, "", ""
        user = request_accounts().user_for_token(credential.strip())
        return user, "token" if user else "", ""
    session_id = session.get("sid")
    if not session_id:
        return None, "", ""
    found = request_accounts().session(session_id)
    if found is None:
        session.pop("sid", None)
        return None, "", ""
    return found["user"], "session", found["csrf_token"]


def _sent_csrf_token() -> str:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and (request.mimetype or "") in _FORM_TYPES:
        sent = request.form.get(CSRF_FIELD, "")
    return sent


def _guard() -> Response | None:
    settings = auth_settings()
    if not settings.required:
        g.biosegment_user, g.biosegment_auth_via, g.biosegment_csrf = _LOCAL_USER, "local", ""
        return _check_local_request()
    reason = _foreign_origin()
    if reason is not None:
        return _refuse(403, reason)
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    user, how, csrf = _identify()
    if user is None:
        return _refuse(401, "log in, or send an API token as 'Authorization: Bearer <token>'")
    g.biosegment_user, g.biosegment_auth_via, g.biosegment_csrf = user, how, csrf
    permission = required_permission(request.method, request.endpoint)
    if not role_allows(user["role"], permission):
        return _refuse(
            403,
            f"{user['name']} ({user['role']}) may not do this: it needs the "
            f"{permission.value} permission",
        )
    if how == "session" and request.method not in SAFE_METHODS:
        sent = _sent_csrf_token()
        if not sent or not hmac.compare_digest(sent.encode(), csrf.encode()):
            return _refuse(
                403,
                f"CSRF token missing or wrong: send the page's token in the {CSRF_HEADER} header",
            )
    return None


def _template_globals() -> dict[str, Any]:
    return {
        "auth_required": auth_settings().required,
        "current_user": current_user(),
        "csrf_token": g.get("biosegment_csrf", ""),
    }


def install_auth(app: Flask, config: Config) -> None:
    """Put the guard in front of every request of ``app``, in the mode ``config``'s host asks."""
    required = not is_loopback(config.server.host)
    app.extensions[AUTH_EXTENSION_KEY] = AuthSettings(required=required, root=Path(config.data_dir))
    if required:
        app.secret_key = ensure_secrets(config).session_key
        app.config.update(
            SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
        )
    # First in line: nothing below (body checks, views) runs for a request that is refused.
    app.before_request_funcs.setdefault(None, []).insert(0, _guard)
    app.teardown_appcontext(_close_accounts)
    app.context_processor(_template_globals)
