"""Per-user API tokens for scripts: ``Authorization: Bearer bsg_<id>_<secret>``.

A token is shown once, when it is made. The database keeps its public id (for lists and
revocation) and a SHA-256 of its secret half; the secret is 256 random bits, so a plain hash is
as strong as a slow one here and keeps every API request cheap. A token acts with its owner's
current role, and stops working the moment it is revoked or its owner is removed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from biosegment.accounts.database import AccountsConnection, now_iso, parse_time
from biosegment.errors import InputError, NotFoundError

__all__ = ["TokenStore", "TOKEN_PREFIX"]

TOKEN_PREFIX = "bsg"
_TOKEN_RULE = re.compile(rf"^{TOKEN_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
_LABEL_RULE = re.compile(r"^[\w .@:+-]{1,100}$")
_USE_NOTE_INTERVAL_S = 60.0
_PUBLIC_COLUMNS = "t.id, t.label, t.created_at, t.last_used_at, t.revoked_at, u.name AS user"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class TokenStore(AccountsConnection):
    def create_token(self, user: str, label: str) -> tuple[str, dict[str, Any]]:
        """Make a token for ``user``; returns ``(token, row)``. Only now is ``token`` known."""
        label = (label or "").strip() or "script"
        if not _LABEL_RULE.match(label):
            raise InputError(
                "a token label is 1-100 letters, digits, spaces or . @ : + - _", where="label"
            )
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self._write() as conn:
            owner = conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
            if owner is None:
                raise NotFoundError(f"no user named {user!r}")
            conn.execute(
                "INSERT INTO api_tokens (id, user_id, label, secret_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (token_id, owner["id"], label, _digest(secret), now_iso()),
            )
        return f"{TOKEN_PREFIX}_{token_id}_{secret}", self.token(token_id)

    def token(self, token_id: str) -> dict[str, Any]:
        row = self._row(
            f"SELECT {_PUBLIC_COLUMNS} FROM api_tokens t JOIN users u "
            "ON u.id = t.user_id WHERE t.id = ?",
            (token_id,),
        )
        if row is None:
            raise NotFoundError(f"no API token {token_id!r}")
        return row

    def tokens(self, user: str | None = None, *, include_revoked: bool = False) -> list[dict]:
        where, params = [], []
        if user is not None:
            where.append("u.name = ?")
            params.append(user)
        if not include_revoked:
            where.append("t.revoked_at IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._rows(
            f"SELECT {_PUBLIC_COLUMNS} FROM api_tokens t JOIN users u "
            f"ON u.id = t.user_id {clause} ORDER BY t.created_at",
            params,
        )

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now_iso(), token_id),
            ).rowcount
        row = self.token(token_id)
        if not changed and row["revoked_at"] is None:
            raise NotFoundError(f"no API token {token_id!r}")
        return row

    def user_for_token(self, token: str) -> dict[str, Any] | None:
        """The owner of a live ``token`` (and the token's id in ``token_id``), else None."""
        match = _TOKEN_RULE.match(token or "")
        if match is None:
            return None
        token_id, secret = match.groups()
        row = self._row(
            "SELECT t.secret_hash, t.revoked_at, t.last_used_at, u.id, u.name, "
            "u.role FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?",
            (token_id,),
        )
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["secret_hash"], _digest(secret)):
            return None
        now = now_iso()
        last = parse_time(row["last_used_at"])
        # A script may call many times a second: note its use at most once a minute.
        if last is None or (parse_time(now) - last).total_seconds() > _USE_NOTE_INTERVAL_S:
            with self._write() as conn:
                conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
        return {"id": row["id"], "name": row["name"], "role": row["role"], "token_id": token_id}
