"""Logins cannot forge audit rows, enumerate names, flood the password check or lock the admin out.

The app listens on 127.0.0.2 (accounts mode); clients connect from chosen source addresses:
127.0.0.1 is this computer, 127.0.0.3 and above stand in for other machines on the network
(only 127.0.0.1, ::1 and localhost count as this computer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.client
import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from biosegment.accounts import open_accounts
from biosegment.accounts.passwords import VERIFICATIONS_AT_ONCE, verification_slot
from biosegment.cli import main
from biosegment.config import ServerConfig
from webui_fixtures import config_for, make_demo_folder, serve

PASSWORD = "a long enough password"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class _FromAddress(urllib.request.HTTPHandler):
    def __init__(self, source: str):
        super().__init__()
        self.source = source

    def http_open(self, req):
        return self.do_open(
            functools.partial(http.client.HTTPConnection, source_address=(self.source, 0)), req
        )


class Browser:
    """A client with a cookie jar, connecting from ``source``."""

    def __init__(self, base: str, source: str):
        self.base = base.rstrip("/")
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            _NoRedirects,
            _FromAddress(source),
        )

    def _send(self, method, path, body=None, headers=None):
        req = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def login(self, name: str, password: str = PASSWORD, *, token: str | None = None):
        _, _, page = self._send("GET", "/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = urllib.parse.urlencode(
            {"name": name, "password": password, "csrf_token": csrf, "next": "/"}
        ).encode()
        return self._send("POST", "/login", body, headers)


def _message(page: str) -> str:
    match = re.search(r'role="alert">(.*?)<', page, re.S)
    return match.group(1).strip() if match else page


@pytest.fixture
def site(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    with open_accounts(root) as accounts:
        accounts.add_user("ada", "admin", PASSWORD)
        accounts.add_user("vic", "viewer", PASSWORD)
        token, _ = accounts.create_token("ada", "scripts")
    config = dataclasses.replace(config_for(root), server=ServerConfig(host="127.0.0.2", port=0))
    with serve(config) as server:
        yield root, server.url, token


def test_a_login_name_with_a_newline_cannot_forge_audit_rows(site):
    root, url, _ = site
    forged = "x\n2026-01-01T00:00:00  ada  login"
    assert Browser(url, "127.0.0.3").login(forged)[0] == 401
    result = CliRunner().invoke(main, ["--data", str(root), "audit"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not any(line.startswith("2026-01-01T00:00:00") for line in lines), result.output
    assert any("x\\n2026-01-01T00:00:00" in line for line in lines), result.output


def test_unknown_and_locked_names_get_the_same_answer(site):
    _, url, _ = site
    outsider = Browser(url, "127.0.0.3")
    for _ in range(5):
        assert outsider.login("vic", "wrong password!")[0] == 401
    locked = outsider.login("vic")  # the right password, but the name is locked
    unknown = outsider.login("nobody-here")
    wrong = outsider.login("vic", "another wrong one")
    assert locked[0] == unknown[0] == wrong[0] == 401
    assert _message(locked[2]) == _message(unknown[2]) == _message(wrong[2]), (
        _message(locked[2]),
        _message(unknown[2]),
    )


def test_thirty_fast_failures_from_one_address_are_throttled(site):
    root, url, _ = site
    guesser = Browser(url, "127.0.0.4")
    statuses = [guesser.login(f"guess{i}", "wrong password!") for i in range(30)]
    codes = [status for status, _, _ in statuses]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}, codes
    assert int(statuses[-1][1]["Retry-After"]) > 0
    # another address is not held up by this one
    assert Browser(url, "127.0.0.5").login("vic")[0] == 303
    with open_accounts(root) as accounts:
        failed = accounts.audit_log(limit=1000, action="login.failed")
    assert len([row for row in failed if row["remote"] == "127.0.0.4"]) == 20


def test_forty_parallel_failures_from_one_address_pass_the_throttle_twenty_times(site):
    root, url, _ = site
    guessers = [Browser(url, "127.0.0.6") for _ in range(40)]

    def guess(number: int) -> int:
        # a login answered "busy" (503: every password-check slot taken) checked and counted
        # nothing; the guesser tries again, as a script would
        for _ in range(200):
            code = guessers[number].login(f"rush{number}", "wrong")[0]
            if code != 503:
                return code
            time.sleep(0.05)
        return 503

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(guess, range(40)))
    assert sorted(codes) == [401] * 20 + [429] * 20, codes
    with open_accounts(root) as accounts:
        failed = accounts.audit_log(limit=1000, action="login.failed")
    assert len([row for row in failed if row["remote"] == "127.0.0.6"]) == 20


def test_a_login_while_every_password_check_slot_is_taken_is_busy_and_counts_nothing(site):
    root, url, _ = site
    with contextlib.ExitStack() as slots:
        for _ in range(VERIFICATIONS_AT_ONCE):
            assert slots.enter_context(verification_slot(0))
        started = time.monotonic()
        code, headers, page = Browser(url, "127.0.0.8").login("vic")
        assert code == 503 and headers.get("Retry-After") == "1"
        assert "try again" in _message(page)
        assert time.monotonic() - started < 5
    with open_accounts(root) as accounts:  # nothing was checked, so nothing was recorded
        assert not [r for r in accounts.audit_log(limit=1000) if r["remote"] == "127.0.0.8"]
    assert Browser(url, "127.0.0.8").login("vic")[0] == 303


def test_right_logins_do_not_count_against_their_address(site):
    _, url, _ = site
    for _ in range(21):  # one more than the limit of failures
        assert Browser(url, "127.0.0.7").login("vic")[0] == 303
    assert Browser(url, "127.0.0.7").login("vic", "wrong password!")[0] == 401


def test_an_admin_locked_out_from_the_network_logs_in_from_this_computer(site):
    _, url, token = site
    outsider = Browser(url, "127.0.0.3")
    for _ in range(5):
        assert outsider.login("ada", "wrong password!")[0] == 401
    assert outsider.login("ada")[0] == 401  # locked for the network
    assert Browser(url, "127.0.0.3").login("ada", token=token)[0] == 303  # with a token
    assert Browser(url, "127.0.0.1").login("ada")[0] == 303  # from this computer
    assert Browser(url, "127.0.0.1").login("ada", "wrong password!")[0] == 401
