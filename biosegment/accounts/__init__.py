"""Accounts for BioSegment beyond 127.0.0.1: users and roles, passwords, API tokens, web
sessions and the audit log, in ``<data>/.biosegment-accounts/accounts.db`` (SPEC 8), apart
from the rebuildable ``.biosegment/``.

On 127.0.0.1 nobody logs in: the desktop user owns the machine. Listening on any other address
requires accounts (:func:`require_accounts_for_exposure`); the web layer then authenticates
every request by session or token and checks the role's permissions.
"""

from __future__ import annotations

from biosegment.accounts.audit import LOCAL_ACTOR
from biosegment.accounts.bootstrap import DEFAULT_ADMIN_NAME, create_first_admin
from biosegment.accounts.database import accounts_path
from biosegment.accounts.exposure import ExposureRefused, is_loopback, require_accounts_for_exposure
from biosegment.accounts.passwords import generate_password
from biosegment.accounts.roles import Permission, Role, role_allows
from biosegment.accounts.store import Accounts, accounts_exist, open_accounts

__all__ = [
    "Accounts",
    "open_accounts",
    "accounts_exist",
    "accounts_path",
    "Role",
    "Permission",
    "role_allows",
    "is_loopback",
    "require_accounts_for_exposure",
    "ExposureRefused",
    "create_first_admin",
    "generate_password",
    "DEFAULT_ADMIN_NAME",
    "LOCAL_ACTOR",
]
