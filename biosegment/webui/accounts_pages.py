"""The login form and logging out: the ``accounts`` blueprint (``/login``, ``/logout``).

Logging in checks the form's pre-login CSRF token (kept in the signed cookie, so another site
cannot log a browser into an account of its choosing), then the name and password; success
starts a server-side session and sends the person where they were going. Every attempt is in
the audit log with its real reason, while the person is told the same words whether the name
is unknown, the password wrong or the name locked. Failed logins are throttled per client
address, and an admin name locked by someone else's guesses still lets its owner in from this
computer (or with an admin's API token). On 127.0.0.1 there is nobody to log in as, and
``/login`` leads to the dashboard.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, redirect, render_template, request, session

from biosegment.accounts.exposure import is_loopback
from biosegment.accounts.passwords import verification_slot
from biosegment.accounts.throttle import LoginThrottle
from biosegment.accounts.users import LOGIN_REFUSED
from biosegment.webui.auth import (
    auth_settings,
    current_user,
    login_csrf_token,
    request_accounts,
    safe_next_path,
)

__all__ = ["bp"]

bp = Blueprint("accounts", __name__)
#: How long a login waits for a password-check slot before it is answered "busy" (503); one
#: check takes a fraction of a second, so a person rarely sees it.
_SLOT_WAIT_SECONDS = 0.05


def _throttle() -> LoginThrottle:
    """The app's count of failed logins by client address (biosegment.accounts.throttle)."""
    return current_app.extensions.setdefault("biosegment_login_throttle", LoginThrottle())


def _admin_may_pass_lock(accounts) -> bool:
    """A login from this computer, or one that also carries an admin's API token, may pass the
    lockout of an admin name: whoever can lock a name out from the network cannot lock out
    the person who administers the installation."""
    if is_loopback(request.remote_addr):
        return True
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    owner = accounts.user_for_token(credential.strip())
    return owner is not None and owner["role"] == "admin"


def _form(error: str | None, status: int, next_path: str) -> Response:
    return Response(
        render_template(
            "accounts/login.html", error=error, next_path=next_path, login_csrf=login_csrf_token()
        ),
        status=status,
        mimetype="text/html",
        headers={"Cache-Control": "no-store"},
    )


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
        return _form(
            "The form was too old or came from elsewhere; please try again.", 403, next_path
        )
    with verification_slot(_SLOT_WAIT_SECONDS) as free:
        if not free:
            # nothing was checked or counted: a burst of logins waits its turn at the door
            # instead of holding every request thread and Argon2's memory for each of them
            response = _form("Many logins are being checked right now; try again.", 503, next_path)
            response.headers["Retry-After"] = "1"
            return response
        return _check_login(next_path)


def _check_login(next_path: str):
    address = request.remote_addr
    wait = _throttle().admit(address)  # counted as failed until it succeeds
    if wait:
        # checked before the password: guessing from one address costs it nothing but time
        response = _form(
            f"Too many failed logins from this address; try again in {int(wait) + 1} seconds.",
            429,
            next_path,
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    name = request.form.get("name", "")
    accounts = request_accounts()
    user, reason = accounts.authenticate(
        name, request.form.get("password", ""), admin_may_pass_lock=_admin_may_pass_lock(accounts)
    )
    if user is None:
        accounts.record(
            name[:64] or "?",
            "login.failed",
            target=name[:64],
            detail={"reason": reason},
            remote=address,
        )
        return _form(LOGIN_REFUSED[0].upper() + LOGIN_REFUSED[1:] + ".", 401, next_path)
    _throttle().succeeded(address)
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
