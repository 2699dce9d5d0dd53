"""`biosegment init --admin`, `biosegment users ...` and `biosegment audit`: accounts made,
changed and removed from the command line, passwords and tokens shown once, the last admin
kept, and every change in the audit log. The accounts database is the real one each time.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from biosegment.accounts import open_accounts
from biosegment.cli import main
from biosegment.datafolder import init_data_folder


def cli(root: Path, *args: str, stdin: str | None = None, ok: bool = True):
    result = CliRunner().invoke(main, ["--data", str(root), *args], input=stdin)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def password_in(output: str) -> str:
    return re.search(r"Password \(shown only now\): (\S+)", output).group(1)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "lab"
    init_data_folder(root)
    return root


def authenticates(root: Path, name: str, password: str) -> bool:
    with open_accounts(root) as accounts:
        user, _ = accounts.authenticate(name, password)
    return user is not None


def test_init_admin_creates_an_admin_and_a_private_session_key(tmp_path):
    root = tmp_path / "new-lab"
    result = CliRunner().invoke(main, ["init", str(root), "--admin", "--json"])
    assert result.exit_code == 0, result.output
    admin = json.loads(result.output)["admin"]
    assert admin["name"] == "admin" and len(admin["password"]) >= 16
    assert authenticates(root, "admin", admin["password"])
    secrets_file = Path(admin["secrets"])
    assert secrets_file == root / "secrets.toml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((root / ".biosegment-accounts" / "accounts.db").stat().st_mode) == 0o600
    assert "session_key" not in (root / "biosegment.toml").read_text()
    # A second init changes nothing and shows no password again.
    again = CliRunner().invoke(main, ["init", str(root), "--admin", "--json"])
    assert json.loads(again.output)["admin"] is None
    assert authenticates(root, "admin", admin["password"])


def test_init_creates_the_admin_by_itself_when_the_config_listens_on_the_network(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "biosegment.toml").write_text('data_dir = "."\n\n[server]\nhost = "0.0.0.0"\n')
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert authenticates(root, "admin", password_in(result.output))
    plain = tmp_path / "desktop"
    result = CliRunner().invoke(main, ["init", str(plain)])
    assert "Password" not in result.output
    assert not (plain / ".biosegment-accounts" / "accounts.db").exists()


def test_users_add_list_passwd_role_and_remove(folder):
    made = cli(folder, "users", "add", "ada", "--role", "admin")
    ada_password = password_in(made.output)
    assert authenticates(folder, "ada", ada_password)
    cli(folder, "users", "add", "anna", "--password-stdin", stdin="piped in password\n")
    assert authenticates(folder, "anna", "piped in password")
    listed = json.loads(cli(folder, "users", "list", "--json").output)
    assert [(u["name"], u["role"]) for u in listed] == [("ada", "admin"), ("anna", "annotator")]
    assert all("password_hash" not in u for u in listed)

    changed = cli(folder, "users", "passwd", "anna")
    assert not authenticates(folder, "anna", "piped in password")
    assert authenticates(folder, "anna", password_in(changed.output))
    cli(folder, "users", "role", "anna", "viewer")
    cli(folder, "users", "remove", "anna")
    assert [u["name"] for u in json.loads(cli(folder, "users", "list", "--json").output)] == ["ada"]


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["users", "add", "bob", "--password-stdin"], "short\n", "at least 10 characters"),
        (["users", "add", "../bob"], None, "user name is"),
        (["users", "add", "ada"], None, "already exists"),
        (["users", "remove", "ada"], None, "last admin"),
        (["users", "role", "ada", "viewer"], None, "last admin"),
        (["users", "remove", "nobody"], None, "no user named 'nobody'"),
    ],
)
def test_bad_requests_are_one_line_errors_and_change_nothing(folder, args, stdin, message):
    cli(folder, "users", "add", "ada", "--role", "admin")
    before = json.loads(cli(folder, "users", "list", "--json").output)
    result = cli(folder, *args, stdin=stdin, ok=False)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert json.loads(cli(folder, "users", "list", "--json").output) == before


def test_tokens_are_shown_once_and_can_be_revoked(folder):
    cli(folder, "users", "add", "ada", "--role", "admin")
    made = json.loads(cli(folder, "users", "token", "ada", "--label", "nightly", "--json").output)
    with open_accounts(folder) as accounts:
        assert accounts.user_for_token(made["token"])["name"] == "ada"
    listed = cli(folder, "users", "tokens", "ada")
    assert made["id"] in listed.output and made["token"] not in listed.output
    cli(folder, "users", "revoke-token", made["id"])
    with open_accounts(folder) as accounts:
        assert accounts.user_for_token(made["token"]) is None
    assert made["id"] not in cli(folder, "users", "tokens").output
    assert made["id"] in cli(folder, "users", "tokens", "--all").output


def test_the_audit_log_lists_account_changes_with_who_made_them(folder):
    cli(folder, "users", "add", "ada", "--role", "admin")
    cli(folder, "users", "add", "vic", "--role", "viewer")
    cli(folder, "users", "remove", "vic")
    entries = json.loads(cli(folder, "audit", "--json").output)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("user.remove", "vic"),
        ("user.add", "vic"),
        ("user.add", "ada"),
    ]
    assert all(e["actor"].startswith("cli:") for e in entries)
    only_adds = json.loads(cli(folder, "audit", "--action", "user.add", "--json").output)
    assert len(only_adds) == 2


def test_jobs_launched_and_cancelled_from_the_command_line_are_audited(tmp_path):
    from job_fixtures import DEMO_DATASET, TINY_MODEL, make_folder

    root, _ = make_folder(tmp_path)
    launched = CliRunner().invoke(
        main,
        [
            "--config",
            str(root / "biosegment.toml"),
            "segment",
            DEMO_DATASET,
            "--model",
            TINY_MODEL,
            "--json",
        ],
    )
    assert launched.exit_code == 0, launched.output
    job_id = json.loads(launched.stdout)["id"]
    cancelled = CliRunner().invoke(
        main, ["--config", str(root / "biosegment.toml"), "cancel", job_id]
    )
    assert cancelled.exit_code == 0, cancelled.output
    entries = json.loads(cli(root, "audit", "--action", "job.*", "--json").output)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("job.cancel", job_id),
        ("job.segment", job_id),
    ]
    assert all(e["actor"].startswith("cli:") for e in entries)
    assert entries[1]["detail"]["dataset"] == DEMO_DATASET
