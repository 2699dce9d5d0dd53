"""Accounts over real HTTP on a non-loopback bind (127.0.0.2): nobody gets in without a login
or a token, roles limit what each person may do, sessions need the CSRF token for every change,
API tokens work until revoked, and the audit log says who launched and cancelled which job.

The app is served by waitress exactly as the daemon serves it; accounts are real rows in
``.biosegment-accounts/accounts.db``; jobs go through the real job service into the real queue. Only
127.0.0.1, ::1 and localhost count as loopback, so 127.0.0.2 stands in for a lab network
address without traffic leaving this machine.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pytest

from biosegment.accounts import open_accounts
from biosegment.config import ServerConfig
from biosegment.webui.access_policy import PUBLIC_ENDPOINTS
from webui_fixtures import (
    DEMO_DATASET,
    chromium_page,
    config_for,
    make_demo_folder,
    make_tiny_model,
    serve,
)

EXPOSED_HOST = "127.0.0.2"
PEOPLE = {"ada": "admin", "anna": "annotator", "vic": "viewer"}
PASSWORD = "a long enough password"


@dataclass
class Reply:
    status: int
    headers: object
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A real HTTP client with its own cookie jar; redirects are returned, not followed."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base.rstrip("/")
        self.token = token
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirects
        )
        self.csrf = ""

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body=None,
        form=None,
        body=None,
        headers: dict | None = None,
    ) -> Reply:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read())

    def login(self, name: str, password: str = PASSWORD) -> Reply:
        form_page = self.request("GET", "/login")
        login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form_page.text).group(1)
        reply = self.request(
            "POST",
            "/login",
            form={"name": name, "password": password, "csrf_token": login_csrf, "next": "/"},
        )
        if reply.status == 303:
            page = self.request("GET", "/")
            self.csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
        return reply

    def send(self, method: str, path: str, **kw) -> Reply:
        """A state-changing request the way the UI sends it: with the page's CSRF token."""
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.request(method, path, headers=headers, **kw)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("accounts") / "data")
    make_tiny_model(root)
    tokens = {}
    with open_accounts(root) as accounts:
        for name, role in PEOPLE.items():
            accounts.add_user(name, role, PASSWORD)
            tokens[name], _ = accounts.create_token(name, "tests")
    config = dataclasses.replace(config_for(root), server=ServerConfig(host=EXPOSED_HOST, port=0))
    with serve(config) as server:
        assert server.host == EXPOSED_HOST
        yield root, server, tokens


def filled_rules(app):
    """Every (method, concrete path, endpoint) of the app, with placeholder path values."""
    values = {
        "dataset": DEMO_DATASET,
        "model": "tiny-membrane",
        "name": "nothing",
        "job_id": "nojob",
        "token_id": "notoken",
        "filename": "x.js",
        "kind": "raw",
        "axis": "z",
    }
    for rule in app.url_map.iter_rules():
        path = rule.rule
        for converter, argument in re.findall(r"<(?:(\w+):)?(\w+)>", rule.rule):
            value = "0" if converter == "int" else values.get(argument, "x")
            path = path.replace(f"<{converter + ':' if converter else ''}{argument}>", value)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path, rule.endpoint


def test_every_non_public_endpoint_refuses_anonymous_requests(site):
    _, server, _ = site
    anonymous = Client(server.url)
    checked = 0
    for method, path, endpoint in filled_rules(server.app):
        if endpoint in PUBLIC_ENDPOINTS:
            continue
        reply = anonymous.request(method, path, json_body={} if method != "GET" else None)
        assert reply.status == 401, (method, path, reply.status, reply.body[:200])
        if path.startswith("/api/"):
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
            assert "log in" in reply.json()["error"]
        else:
            assert 'action="/login"' in reply.text, "a page asks for a login instead"
        checked += 1
    assert checked >= 35
    assert anonymous.request("GET", "/static/css/app.css").status == 200
    assert anonymous.request("GET", "/login").status == 200
    assert anonymous.request("GET", "/no/such/page").status == 401


@pytest.mark.parametrize(
    "credential",
    ["", "Bearer bsg_000000000000_" + "x" * 43, "Bearer not-a-token", "Basic YWRhOnBhc3N3b3Jk"],
)
def test_made_up_credentials_are_refused(site, credential):
    _, server, _ = site
    reply = Client(server.url).request(
        "GET", "/api/v1/datasets", headers={"Authorization": credential}
    )
    assert reply.status == 401


@pytest.mark.parametrize("name, role", [pytest.param(n, r, id=r) for n, r in PEOPLE.items()])
def test_each_role_reaches_exactly_what_it_may(site, name, role):
    _, server, tokens = site
    client = Client(server.url, token=tokens[name])
    allowed_writes = {
        "admin": None,
        "annotator": (
            "annotations_api.",
            "jobs_api.",
            "items_api.",
            "auth_api.create_token",
            "auth_api.revoke_token",
            "accounts.logout",
        ),
        "viewer": ("auth_api.create_token", "auth_api.revoke_token", "accounts.logout"),
    }[role]
    admin_reads = {"auth_api.list_users", "auth_api.list_audit"}
    for method, path, endpoint in filled_rules(server.app):
        if endpoint in PUBLIC_ENDPOINTS or endpoint == "auth_api.create_token":
            continue  # creating tokens is checked below, without making one per role run
        reply = client.request(method, path, json_body={} if method != "GET" else None)
        if method == "GET":
            may = role == "admin" or endpoint not in admin_reads
        else:
            may = allowed_writes is None or endpoint.startswith(allowed_writes)
        if may:
            assert reply.status not in (401, 403), (role, method, path, reply.body[:200])
        else:
            assert reply.status == 403, (role, method, path, reply.status, reply.body[:200])
            assert role in reply.text
    # what a DELETE moved to the trash comes back, for the tests after this one
    admin = Client(server.url, token=tokens["ada"])
    for entry in admin.request("GET", "/api/v1/trash").json():
        restore = f"/api/v1/trash/{urllib.parse.quote(entry['id'])}/restore"
        assert admin.request("POST", restore).status == 200


def test_downloads_are_reads_a_viewer_may_make_and_nobody_else(site):
    _, server, tokens = site
    path = "/api/v1/models/tiny-membrane/export/torchscript"
    assert Client(server.url).request("GET", path).status == 401
    reply = Client(server.url, token=tokens["vic"]).request("GET", path)
    assert reply.status == 200, reply.body[:200]
    assert (
        reply.headers["Content-Disposition"]
        == 'attachment; filename="tiny-membrane.torchscript.pt"'
    )


def test_a_viewer_cannot_launch_cancel_or_paint(site):
    root, server, tokens = site
    viewer = Client(server.url, token=tokens["vic"])
    annotator = Client(server.url, token=tokens["anna"])
    job = annotator.request(
        "POST",
        "/api/v1/jobs/segment",
        json_body={"dataset": DEMO_DATASET, "model": "tiny-membrane"},
    )
    assert job.status == 202, job.body
    job_id = job.json()["id"]
    for method, path, body in [
        ("POST", "/api/v1/jobs/segment", {"dataset": DEMO_DATASET, "model": "tiny-membrane"}),
        ("POST", "/api/v1/jobs/train", {"dataset": DEMO_DATASET}),
        ("POST", f"/api/v1/jobs/{job_id}/cancel", {}),
        ("POST", f"/api/v1/datasets/{DEMO_DATASET}/annotations", {"name": "mine"}),
    ]:
        reply = viewer.request(method, path, json_body=body)
        assert reply.status == 403 and "viewer" in reply.json()["error"], (path, reply.body)
    assert viewer.request("GET", f"/api/v1/jobs/{job_id}").json()["state"] == "queued"
    assert not (root / "annotations" / DEMO_DATASET / "mine").exists()
    assert viewer.request("GET", "/api/v1/datasets").status == 200


def test_session_changes_need_the_csrf_token(site):
    _, server, _ = site
    browser = Client(server.url)
    assert browser.login("anna").status == 303
    # a name of its own: the same request as another test's would answer that queued job (200)
    launch = {"dataset": DEMO_DATASET, "model": "tiny-membrane", "name": "csrf-checked"}
    missing = browser.request("POST", "/api/v1/jobs/segment", json_body=launch)
    assert missing.status == 403 and "CSRF" in missing.json()["error"]
    wrong = browser.request(
        "POST", "/api/v1/jobs/segment", json_body=launch, headers={"X-CSRF-Token": "guessed"}
    )
    assert wrong.status == 403
    foreign = browser.send(
        "POST", "/api/v1/jobs/segment", json_body=launch, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status == 403 and "origin" in foreign.json()["error"]
    good = browser.send("POST", "/api/v1/jobs/segment", json_body=launch)
    assert good.status == 202, good.body
    # The form posts of the UI need it too: logging out without it does not log out.
    assert browser.request("POST", "/logout", form={}).status == 403
    assert browser.request("GET", "/api/v1/auth/me").json()["name"] == "anna"
    assert browser.send("POST", "/logout", form={"csrf_token": browser.csrf}).status == 303
    assert browser.request("GET", "/api/v1/auth/me").status == 401


def test_the_login_form_needs_its_own_csrf_token_and_a_right_password(site):
    _, server, _ = site
    browser = Client(server.url)
    browser.request("GET", "/login")
    forged = browser.request("POST", "/login", form={"name": "ada", "password": PASSWORD})
    assert forged.status == 403 and browser.request("GET", "/api/v1/auth/me").status == 401
    assert browser.login("ada", "not the password").status == 401
    assert browser.login("nobody", PASSWORD).status == 401
    assert browser.login("ada").status == 303
    assert browser.request("GET", "/api/v1/auth/me").json() == {
        "name": "ada",
        "role": "admin",
        "accounts": True,
        "via": "session",
    }


def test_after_login_the_browser_goes_back_only_to_this_site(site):
    _, server, _ = site
    browser = Client(server.url)
    page = browser.request("GET", "/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = browser.request(
        "POST",
        "/login",
        form={
            "name": "vic",
            "password": PASSWORD,
            "csrf_token": login_csrf,
            "next": "//evil.example/phish",
        },
    )
    assert reply.status == 303 and reply.headers["Location"] == "/"
    cookie = next(c for c in browser.cookies if c.name == "biosegment_session")
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_api_tokens_work_until_revoked(site):
    _, server, _ = site
    browser = Client(server.url)
    browser.login("vic")
    made = browser.send("POST", "/api/v1/auth/tokens", json_body={"label": "nightly export"})
    assert made.status == 201
    token, token_id = made.json()["token"], made.json()["id"]
    script = Client(server.url, token=token)
    assert script.request("GET", "/api/v1/datasets").status == 200
    listed = browser.request("GET", "/api/v1/auth/tokens").json()
    assert token_id in {t["id"] for t in listed} and all("token" not in t for t in listed)
    other = Client(server.url, token=None)
    other.login("anna")
    assert other.send("DELETE", f"/api/v1/auth/tokens/{token_id}").status == 404, (
        "nobody but the owner (or an admin) may revoke a token"
    )
    assert browser.send("DELETE", f"/api/v1/auth/tokens/{token_id}").status == 200
    assert script.request("GET", "/api/v1/datasets").status == 401


def test_the_audit_log_says_who_launched_and_cancelled_which_job(site):
    _, server, tokens = site
    anna = Client(server.url, token=tokens["anna"])
    launch = {"dataset": DEMO_DATASET, "model": "tiny-membrane", "name": "audited"}
    job_id = anna.request("POST", "/api/v1/jobs/segment", json_body=launch).json()["id"]
    # the same request again answers that job and launches nothing, so it is not recorded
    again = anna.request("POST", "/api/v1/jobs/segment", json_body=launch)
    assert again.status == 200 and again.json()["id"] == job_id
    admin = Client(server.url)
    admin.login("ada")
    assert admin.send("POST", f"/api/v1/jobs/{job_id}/cancel").status == 200
    viewer = Client(server.url, token=tokens["vic"])
    refused = viewer.request("POST", f"/api/v1/jobs/{job_id}/retry")
    assert refused.status == 403
    entries = admin.request("GET", f"/api/v1/audit?action=job.*&target={job_id}").json()
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("job.cancel", "ada"),
        ("job.segment", "anna"),
    ]
    launched = entries[1]["detail"]
    assert (launched["dataset"], launched["model"]) == (DEMO_DATASET, "tiny-membrane")
    assert entries[0]["remote"] == "127.0.0.1"
    assert Client(server.url, token=tokens["anna"]).request("GET", "/api/v1/audit").status == 403


def test_a_new_password_or_a_removed_account_ends_access_at_once(site):
    root, server, _ = site
    with open_accounts(root) as accounts:
        accounts.add_user("temp", "annotator", PASSWORD)
        token, _ = accounts.create_token("temp", "tests")
    browser = Client(server.url)
    browser.login("temp")
    assert browser.request("GET", "/api/v1/auth/me").status == 200
    with open_accounts(root) as accounts:
        accounts.set_password("temp", "another long password")
    assert browser.request("GET", "/api/v1/auth/me").status == 401
    script = Client(server.url, token=token)
    assert script.request("GET", "/api/v1/auth/me").status == 200
    with open_accounts(root) as accounts:
        accounts.remove_user("temp")
    assert script.request("GET", "/api/v1/auth/me").status == 401


def test_five_wrong_passwords_lock_the_name(site):
    root, server, _ = site
    with open_accounts(root) as accounts:
        accounts.add_user("guessme", "viewer", PASSWORD)
    for _ in range(5):
        assert Client(server.url).login("guessme", "wrong password!").status == 401
    locked = Client(server.url).login("guessme")
    assert locked.status == 401 and "too many wrong passwords" in locked.text.lower()
    with open_accounts(root) as accounts:
        accounts.set_password("guessme", PASSWORD)  # an admin's reset lifts the lock
    assert Client(server.url).login("guessme").status == 303


def test_the_ui_sends_the_csrf_token_with_its_own_requests(site):
    """In Chromium: log in through the form, cancel a job from the jobs page."""
    _, server, tokens = site
    job_id = (
        Client(server.url, token=tokens["anna"])
        .request(
            "POST",
            "/api/v1/jobs/segment",
            json_body={"dataset": DEMO_DATASET, "model": "tiny-membrane"},
        )
        .json()["id"]
    )
    with chromium_page() as browser:
        page = browser.page
        page.goto(server.url + "jobs")
        page.fill("input[name=name]", "anna")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#jobs-page")
        page.click(f"#job-rows tr:has-text('{job_id}') >> text=Cancel")
        page.wait_for_function(
            f"fetch('/api/v1/jobs/{job_id}').then(r => r.json()).then(j => j.state === "
            "'cancelled')",
            polling=200,
        )
        errors = list(browser.errors)
    assert not [e for e in errors if "403" in e], errors
