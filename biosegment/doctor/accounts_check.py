"""Doctor's checks of who may get in: ``accounts.db`` and ``secrets.toml``.

Accounts cannot be rebuilt from the data folder, so a damaged ``accounts.db`` is set aside and
everything still readable in it (people, password hashes, API tokens, the audit log) is copied
into a new one; if no admin survives, the finding stays a problem and says how to make one.
A configuration that listens beyond 127.0.0.1 without an admin is reported, since the daemon
will refuse to start. A ``secrets.toml`` that others can read is made private again.
"""

from __future__ import annotations

import os
import stat
import sys

from biosegment.accounts import accounts_path, is_loopback, open_accounts
from biosegment.accounts.database import legacy_accounts_path, move_legacy_accounts
from biosegment.accounts.recovery import RESTORED_TABLES, restore_accounts
from biosegment.config import Config
from biosegment.doctor.report import Finding
from biosegment.doctor.sqlite_files import probe_database, salvage_rows
from biosegment.errors import BioSegmentError
from biosegment.secret_store import load_secrets, secrets_path
from biosegment.sqlite_support import move_aside

__all__ = ["check_accounts", "check_secrets"]

_MAKE_ADMIN = "create one with `biosegment users add NAME --role admin`"


def _needs_accounts(config: Config) -> bool:
    return not is_loopback(config.server.host)


def check_accounts(config: Config, *, repair: bool) -> Finding:
    path = accounts_path(config.data_dir)
    if not path.exists() and legacy_accounts_path(config.data_dir).is_file():
        if not repair:
            return Finding(
                "accounts",
                "problem",
                "the accounts are still in "
                ".biosegment/accounts.db, which is meant for rebuildable state only; "
                "run `biosegment doctor` to move them to .biosegment-accounts/",
            )
        move_legacy_accounts(config.data_dir)
    health = probe_database(path)
    if health.state == "missing":
        if _needs_accounts(config):
            return Finding(
                "accounts",
                "problem",
                f"the config listens on "
                f"{config.server.host or 'every address'} but there are no accounts; "
                f"{_MAKE_ADMIN}",
            )
        return Finding("accounts", "ok", "no accounts (BioSegment serves 127.0.0.1 only)")
    if health.ok:
        with open_accounts(config.data_dir) as accounts:
            people = accounts.users()
        admins = sum(1 for p in people if p["role"] == "admin")
        if _needs_accounts(config) and not admins:
            return Finding(
                "accounts", "problem", f"no admin among {len(people)} account(s); {_MAKE_ADMIN}"
            )
        return Finding("accounts", "ok", f"{len(people)} account(s), {admins} admin(s)")
    if not repair:
        return Finding(
            "accounts",
            "problem",
            f"{path} is {health.state} ({health.detail}); run "
            "`biosegment doctor` to recover what it still holds",
        )
    salvaged = salvage_rows(path, RESTORED_TABLES)
    moved = move_aside(path, "corrupt")
    counts = restore_accounts(config.data_dir, salvaged)
    detail = (
        f"{path.name} was {health.state} ({health.detail}); recovered {counts['users']} "
        f"account(s), {counts['api_tokens']} API token(s) and {counts['audit']} audit "
        f"entries into a new one (everyone logs in again); the damaged file is kept as "
        f"{moved.name}"
    )
    state = "repaired"
    if not counts["admins"]:
        state, detail = "problem", detail + f"; no admin survived: {_MAKE_ADMIN}"
    return Finding("accounts", state, detail, recovered=counts, moved_aside=str(moved))


def check_secrets(config: Config, *, repair: bool) -> Finding:
    path = secrets_path(config)
    if not path.exists():
        return Finding("secrets", "ok", f"no {path.name} yet (made when accounts are first used)")
    if sys.platform != "win32":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            if not repair:
                return Finding(
                    "secrets", "problem", f"{path} is readable by others (mode {mode:04o})"
                )
            os.chmod(path, 0o600)
            return Finding(
                "secrets", "repaired", f"{path} was readable by others (mode {mode:04o}); now 0600"
            )
    try:
        load_secrets(config, env={})
    except BioSegmentError as exc:
        return Finding("secrets", "problem", str(exc))
    return Finding("secrets", "ok", f"{path} is private")
