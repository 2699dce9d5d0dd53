"""Web UI sessions: a random id in the browser's cookie, its hash and a CSRF token here.

Sessions are kept server-side so that logging out, changing a password or removing a user ends
them at once. A session ends after :data:`IDLE_LIMIT` without a request or :data:`MAX_AGE` in
all. Each session has its own CSRF token, which every state-changing request must echo.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from biosegment.accounts.database import AccountsConnection, now_iso, parse_time

__all__ = ["SessionStore", "IDLE_LIMIT", "MAX_AGE"]

IDLE_LIMIT = timedelta(hours=12)
MAX_AGE = timedelta(days=7)
#: last_seen is written at most this often, so page loads do not each cost a write.
_TOUCH_INTERVAL = timedelta(minutes=1)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore(AccountsConnection):
    def start_session(self, user_id: int) -> tuple[str, str]:
        """Start a session; returns ``(session id for the cookie, CSRF token)``."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = now_iso()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, "
                "last_seen_at) VALUES (?, ?, ?, ?, ?)",
                (_digest(session_id), user_id, csrf, now, now),
            )
        return session_id, csrf

    def session(self, session_id: str) -> dict[str, Any] | None:
        """``{user: {...}, csrf_token}`` for a live session, else None (expired ones are ended)."""
        if not isinstance(session_id, str) or not session_id:
            return None
        key = _digest(session_id)
        row = self._row(
            "SELECT s.csrf_token, s.created_at, s.last_seen_at, u.id, u.name, u.role "
            "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
            (key,),
        )
        if row is None:
            return None
        now = parse_time(now_iso())
        if (
            now - parse_time(row["last_seen_at"]) > IDLE_LIMIT
            or now - parse_time(row["created_at"]) > MAX_AGE
        ):
            self.end_session(session_id)
            return None
        if now - parse_time(row["last_seen_at"]) > _TOUCH_INTERVAL:
            with self._write() as conn:
                conn.execute(
                    "UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?",
                    (now.isoformat(timespec="milliseconds"), key),
                )
        return {
            "user": {"id": row["id"], "name": row["name"], "role": row["role"]},
            "csrf_token": row["csrf_token"],
        }

    def end_session(self, session_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_digest(session_id),))
