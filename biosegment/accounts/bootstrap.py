"""The first administrator: created by ``biosegment init --admin`` with a password shown once."""

from __future__ import annotations

from pathlib import Path

from biosegment.accounts.passwords import generate_password
from biosegment.accounts.store import open_accounts

__all__ = ["create_first_admin", "DEFAULT_ADMIN_NAME"]

DEFAULT_ADMIN_NAME = "admin"


def create_first_admin(root: Path, name: str = DEFAULT_ADMIN_NAME) -> str | None:
    """Create admin ``name`` with a generated password and return it; None when an admin exists
    already (nothing is changed then)."""
    with open_accounts(root) as accounts:
        if accounts.has_admin():
            return None
        password = generate_password()
        accounts.add_user(name, "admin", password)
        accounts.record("init", "user.add", target=name, detail={"role": "admin"})
    return password
