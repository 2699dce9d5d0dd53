"""``open_accounts(root)``: one object for the users, tokens, sessions and audit log of a folder."""

from __future__ import annotations

from pathlib import Path

from biosegment.accounts.api_tokens import TokenStore
from biosegment.accounts.audit import AuditLog
from biosegment.accounts.database import accounts_path, connect_accounts, legacy_accounts_path
from biosegment.accounts.sessions import SessionStore
from biosegment.accounts.users import UserStore
from biosegment.errors import NotFoundError

__all__ = ["Accounts", "open_accounts", "accounts_exist"]


class Accounts(UserStore, TokenStore, SessionStore, AuditLog):
    """The accounts of one data folder. Create with :func:`open_accounts`; ``close()`` after."""


def open_accounts(root: Path) -> Accounts:
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"data folder {root} does not exist")
    conn, path = connect_accounts(root)
    return Accounts(conn, path)


def accounts_exist(root: Path) -> bool:
    """True when the folder has an accounts database with at least one admin in it."""
    if not accounts_path(root).is_file() and not legacy_accounts_path(root).is_file():
        return False
    with open_accounts(root) as accounts:
        return accounts.has_admin()
