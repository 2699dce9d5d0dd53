"""Accounts survive a reset of ``.biosegment/``, and that state folder is private on POSIX.

``.biosegment/`` holds what can be rebuilt (the index, the queue, caches, logs); deleting it
must never take the accounts, API tokens and audit log with it. Accounts made by an older
BioSegment inside ``.biosegment/`` move out on first use (or when ``doctor`` runs).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat

import pytest
from click.testing import CliRunner

from biosegment.accounts import accounts_path, open_accounts
from biosegment.catalog import open_catalog, refresh
from biosegment.cli import main
from biosegment.datafolder import init_data_folder

PASSWORD = "a long enough password"
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def test_deleting_the_state_folder_keeps_accounts_tokens_and_audit(tmp_path):
    root = tmp_path / "data"
    init_data_folder(root)
    with open_accounts(root) as accounts:
        accounts.add_user("ada", "admin", PASSWORD)
        token, _ = accounts.create_token("ada", "nightly")
        accounts.record("ada", "job.segment", target="j1")
    shutil.rmtree(root / ".biosegment")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with open_accounts(root) as accounts:
        assert accounts.authenticate("ada", PASSWORD)[0] is not None
        assert accounts.user_for_token(token)["name"] == "ada"
        assert [row["target"] for row in accounts.audit_log(action="job.segment")] == ["j1"]
    assert accounts_path(root).parent.name == ".biosegment-accounts"


def _legacy_accounts(root):
    """Accounts where an older BioSegment kept them: .biosegment/accounts.db."""
    with open_accounts(root) as accounts:
        accounts.add_user("ada", "admin", PASSWORD)
        accounts.record("ada", "login")
    legacy = root / ".biosegment" / "accounts.db"
    os.replace(accounts_path(root), legacy)
    return legacy


def test_accounts_in_the_old_place_move_out_on_first_use(tmp_path):
    root = tmp_path / "data"
    init_data_folder(root)
    legacy = _legacy_accounts(root)
    with open_accounts(root) as accounts:
        assert accounts.authenticate("ada", PASSWORD)[0] is not None
        assert accounts.audit_log(action="login")
    assert not legacy.exists() and accounts_path(root).is_file()
    shutil.rmtree(root / ".biosegment")
    with open_accounts(root) as accounts:
        assert [u["name"] for u in accounts.users()] == ["ada"]


def test_doctor_reports_then_moves_accounts_in_the_old_place(tmp_path):
    root = tmp_path / "data"
    init_data_folder(root)
    legacy = _legacy_accounts(root)
    check = CliRunner().invoke(main, ["--data", str(root), "doctor", "--check"])
    assert "still in .biosegment/accounts.db" in check.output, check.output
    assert legacy.exists()
    CliRunner().invoke(main, ["--data", str(root), "doctor"])
    assert not legacy.exists()
    with sqlite3.connect(accounts_path(root)) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]


@posix_only
def test_the_state_folder_is_private(tmp_path):
    root = tmp_path / "data"
    init_data_folder(root)
    with open_catalog(root):
        pass
    assert stat.S_IMODE((root / ".biosegment").stat().st_mode) == 0o700
    with open_accounts(root):
        pass
    assert stat.S_IMODE(accounts_path(root).parent.stat().st_mode) == 0o700
    # a folder made by an older version, readable by everyone, is tightened on the next open
    os.chmod(root / ".biosegment", 0o755)
    with open_catalog(root):
        pass
    assert stat.S_IMODE((root / ".biosegment").stat().st_mode) == 0o700


@posix_only
def test_a_group_shared_data_folder_shares_its_state_with_the_group(tmp_path):
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o2775)
    init_data_folder(root)
    assert stat.S_IMODE((root / ".biosegment").stat().st_mode) & 0o777 == 0o770
