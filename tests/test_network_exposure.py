"""Where BioSegment listens: 127.0.0.1 without a login; anywhere else only with accounts, with
the session key in a private secrets.toml; and on 127.0.0.1 no other site may drive the UI.

The refusal is tested on the real `biosegment run --headless` process as well as on the server
factory; 127.0.0.2 stands in for a network address (only 127.0.0.1, ::1 and localhost count as
loopback), so no traffic leaves this machine.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from biosegment.accounts import (
    ExposureRefused,
    is_loopback,
    open_accounts,
    require_accounts_for_exposure,
)
from biosegment.config import ServerConfig
from biosegment.datafolder import init_data_folder
from biosegment.errors import InputError
from biosegment.secret_store import load_secrets
from biosegment.webui.server import create_server
from webui_fixtures import Http, config_for, serve


def exposed(config, host: str = "127.0.0.2"):
    return dataclasses.replace(config, server=ServerConfig(host=host, port=0))


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "lab"
    init_data_folder(root)
    return root


def add_admin(root: Path) -> None:
    with open_accounts(root) as accounts:
        accounts.add_user("ada", "admin", "a long enough password")


def test_only_the_default_loopback_names_count_as_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "LOCALHOST"))
    assert not any(
        is_loopback(h) for h in ("127.0.0.2", "0.0.0.0", "", "::", "10.0.0.5", "lab-server.local")
    )


@pytest.mark.parametrize("host", ["127.0.0.2", "0.0.0.0", "", "::"])
def test_a_network_address_is_refused_without_accounts(folder, host):
    config = config_for(folder)
    with pytest.raises(ExposureRefused, match="requires accounts"):
        require_accounts_for_exposure(config, host)
    # An accounts database with nobody in it is not accounts either.
    with open_accounts(folder):
        pass
    with pytest.raises(ExposureRefused):
        require_accounts_for_exposure(config, host)
    assert require_accounts_for_exposure(config, "127.0.0.1") is config


def test_the_server_factory_refuses_before_binding(folder):
    port = free_port("127.0.0.2")
    config = dataclasses.replace(
        config_for(folder), server=ServerConfig(host="127.0.0.2", port=port)
    )
    with pytest.raises(ExposureRefused, match="refusing to listen on 127.0.0.2"):
        create_server(config)
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", port))  # still free: nothing was bound


def test_with_an_admin_the_server_starts_and_asks_for_logins(folder):
    add_admin(folder)
    secrets_file = folder / "secrets.toml"
    assert not secrets_file.exists()
    with serve(exposed(config_for(folder))) as server:
        assert Http(server.url).get("/api/v1/datasets").status == 401
    # The session key was made on first need, readable by its owner only.
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert len(load_secrets(config_for(folder)).session_key) == 64


def test_a_secrets_file_others_can_read_is_refused(folder):
    add_admin(folder)
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text('session_key = "' + "k" * 64 + '"\n')
    secrets_file.chmod(0o644)
    with pytest.raises(InputError, match=r"secrets\.toml: readable by others.*chmod 600"):
        create_server(exposed(config_for(folder)))
    secrets_file.chmod(0o600)
    server = create_server(exposed(config_for(folder)))
    server.close()


def test_the_environment_overrides_the_secrets_file(folder):
    config = config_for(folder)
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text('session_key = "' + "f" * 64 + '"\n')
    secrets_file.chmod(0o600)
    assert load_secrets(config, env={}).session_key == "f" * 64
    from_env = load_secrets(config, env={"BIOSEGMENT_SESSION_KEY": "e" * 64})
    assert from_env.session_key == "e" * 64
    assert "session_key" not in (folder / "biosegment.toml").read_text()


# -- the real daemon process -----------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def run_headless(config_file: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOSEGMENT")}
    return subprocess.Popen(
        [sys.executable, "-m", "biosegment", "--config", str(config_file), "run", "--headless"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_headless_refuses_then_serves_once_an_admin_exists(folder):
    port = free_port("127.0.0.2")
    config_file = folder / "biosegment.toml"
    config_file.write_text(f'data_dir = "."\n\n[server]\nhost = "127.0.0.2"\nport = {port}\n')
    refused = run_headless(config_file)
    out, err = refused.communicate(timeout=120)
    assert refused.returncode == 1, out + err
    assert "refusing to listen on 127.0.0.2" in err and "users add" in err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", port), timeout=1).close()

    subprocess.run(
        [
            sys.executable,
            "-m",
            "biosegment",
            "--config",
            str(config_file),
            "users",
            "add",
            "ada",
            "--role",
            "admin",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    daemon = run_headless(config_file)
    try:
        url = f"http://127.0.0.2:{port}/api/v1/datasets"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as error:
                assert error.code == 401
                break
            except OSError:
                assert daemon.poll() is None, daemon.communicate()[1]
                assert time.monotonic() < deadline, "the daemon did not start listening"
                time.sleep(0.3)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    assert daemon.returncode == 0


# -- 127.0.0.1: no login, but no other site either ---------------------------------------------


@pytest.fixture
def local_site(folder):
    with serve(config_for(folder)) as server:
        yield Http(server.url)


def test_loopback_needs_no_login(local_site):
    assert local_site.get("/api/v1/datasets").status == 200
    assert local_site.get("/api/v1/auth/me").json()["name"] == "local"


def test_loopback_refuses_a_foreign_host_header(local_site):
    """A site that rebinds its DNS name to 127.0.0.1 still sends its own name as Host."""
    reply = local_site.get("/api/v1/datasets", headers={"Host": "attacker.example"})
    assert reply.status == 403 and "127.0.0.1" in reply.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://attacker.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_loopback_refuses_changes_from_other_sites(local_site, headers):
    reply = local_site.post(
        "/api/v1/jobs/segment", json_body={"dataset": "x", "model": "y"}, headers=headers
    )
    assert reply.status == 403
    # Reading is not a change; the browser's same-origin policy keeps the answer from the site.
    assert local_site.get("/api/v1/datasets", headers=headers).status == 200


def test_loopback_accepts_changes_from_its_own_pages(local_site):
    origin = local_site.base
    reply = local_site.post(
        "/api/v1/jobs/segment",
        json_body={"dataset": "x", "model": "y"},
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert reply.status == 404 and reply.json()["field"] == "dataset"
