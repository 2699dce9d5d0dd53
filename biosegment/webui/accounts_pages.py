"""The login form and logging out: the ``accounts`` blueprint (``/login``, ``/logout``).

Logging in checks the form's pre-login CSRF token (kept in the signed cookie, so another site
cannot log a browser into an account of its choosing), then the name and password; success
starts a server-side session and sends the person where they were going. Every attempt is in
the audit log. On 127.0.0.1 there is nobody to log in as, and ``/login`` leads to the dashboard.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, redirect, render_template, request, session

from biosegment.webui.auth import (auth_settings, current_user, login_csrf_token,
                                   request_accounts, safe_next_path)

__all__ = ["bp"]

bp = Blueprint("accounts", __name__)


def _form(error: str | None, status: int, next_path: str) -> Response:
    return Response(render_template("accounts/login.html", error=error, next_path=next_path,
                                    login_csrf=login_csrf_token()),
                    status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


@bp.route("/login", methods=["GET", "POST"])
def login():
    if not auth_settings().required:
        return redirect("/")
    next_path = safe_next_path(request.values.get("next"))
    if request.method == "GET":
        return _form(None, 200, next_path)
    expected = session.get("login_csrf", "")
    sent = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _form("The form was too old or came from elsewhere; please try again.", 403,
                     next_path)
    name = request.form.get("name", "")
    accounts = request_accounts()
    user, reason = accounts.authenticate(name, request.form.get("password", ""))
    if user is None:
        accounts.record(name[:64] or "?", "login.failed", target=name[:64],
                        detail={"reason": reason}, remote=request.remote_addr)
        return _form(reason.capitalize() + ".", 401, next_path)
    session_id, _ = accounts.start_session(user["id"])
    session.clear()  # a fresh cookie: nothing from before the login carries over
    session["sid"] = session_id
    accounts.record(user["name"], "login", remote=request.remote_addr)
    return redirect(next_path, code=303)


@bp.post("/logout")
def logout():
    session_id = session.get("sid")
    user = current_user()
    if auth_settings().required and session_id:
        accounts = request_accounts()
        accounts.end_session(session_id)
        if user is not None:
            accounts.record(user["name"], "logout", remote=request.remote_addr)
    session.clear()
    return redirect("/login" if auth_settings().required else "/", code=303)
