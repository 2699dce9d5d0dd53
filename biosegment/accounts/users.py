"""People who may use BioSegment beyond 127.0.0.1: names, roles, passwords and logins.

A name is case-insensitive and unique. Five wrong passwords in a row lock the name for fifteen
minutes (a person typing badly waits; a script guessing stops getting answers). The last admin
cannot be removed or demoted, so an installation never locks itself out.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from biosegment.accounts.database import AccountsConnection, now_iso, parse_time
from biosegment.accounts.passwords import (
    MIN_PASSWORD_CHARS,
    burn_verification_time,
    hash_password,
    verify_password,
)
from biosegment.accounts.roles import Role, parse_role
from biosegment.errors import InputError, NotFoundError

__all__ = ["UserStore", "check_user_name", "MAX_FAILED_LOGINS", "LOCKOUT", "LOGIN_REFUSED"]

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
#: What a refused login is told, whatever the reason: the same words for an unknown name, a
#: wrong password and a locked name, so that the answer reveals nothing about the accounts.
LOGIN_REFUSED = (
    "wrong name or password (after too many wrong passwords a name is locked for 15 minutes)"
)
_NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_PUBLIC_COLUMNS = "id, name, role, created_at, updated_at, locked_until"


def check_user_name(name: str, *, where: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RULE.match(name):
        raise InputError(
            "a user name is 1-64 letters, digits, '.', '_', '@' or '-', starting "
            "with a letter or digit",
            where=where,
        )
    return name


class UserStore(AccountsConnection):
    def users(self) -> list[dict[str, Any]]:
        return self._rows(f"SELECT {_PUBLIC_COLUMNS} FROM users ORDER BY name")

    def user(self, name: str) -> dict[str, Any]:
        row = self._row(f"SELECT {_PUBLIC_COLUMNS} FROM users WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no user named {name!r}")
        return row

    def user_by_id(self, user_id: int) -> dict[str, Any] | None:
        return self._row(f"SELECT {_PUBLIC_COLUMNS} FROM users WHERE id = ?", (user_id,))

    def has_admin(self) -> bool:
        return self._row("SELECT 1 AS yes FROM users WHERE role = 'admin' LIMIT 1") is not None

    def add_user(self, name: str, role: Role | str, password: str) -> dict[str, Any]:
        name = check_user_name(name)
        role = parse_role(str(getattr(role, "value", role)))
        password_hash = hash_password(password)
        now = now_iso()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise InputError(f"a user named {name!r} already exists", where="name")
            conn.execute(
                "INSERT INTO users (name, role, password_hash, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, role.value, password_hash, now, now),
            )
        return self.user(name)

    def _refuse_losing_last_admin(self, conn, name: str) -> None:
        row = conn.execute("SELECT role FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no user named {name!r}")
        if row["role"] == "admin":
            (admins,) = conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()
            if admins <= 1:
                raise InputError(
                    f"{name!r} is the last admin; add another admin first", where="name"
                )

    def remove_user(self, name: str) -> None:
        """Remove a user with their tokens and sessions (cascading)."""
        with self._write() as conn:
            self._refuse_losing_last_admin(conn, name)
            conn.execute("DELETE FROM users WHERE name = ?", (name,))

    def set_role(self, name: str, role: Role | str) -> dict[str, Any]:
        role = parse_role(str(getattr(role, "value", role)))
        with self._write() as conn:
            if role is not Role.ADMIN:
                self._refuse_losing_last_admin(conn, name)
            conn.execute(
                "UPDATE users SET role = ?, updated_at = ? WHERE name = ?",
                (role.value, now_iso(), name),
            )
        return self.user(name)

    def set_password(self, name: str, password: str) -> None:
        """Change the password, unlock the name, and sign out every session of the user."""
        password_hash = hash_password(password)
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL, "
                "updated_at = ? WHERE name = ?",
                (password_hash, now_iso(), name),
            ).rowcount
            if not updated:
                raise NotFoundError(f"no user named {name!r}")
            conn.execute(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)",
                (name,),
            )

    def authenticate(
        self, name: str, password: str, *, admin_may_pass_lock: bool = False
    ) -> tuple[dict[str, Any] | None, str]:
        """``(user, "")`` for a right password, else ``(None, reason)``; counts failures.

        The reason is for the audit log (``unknown name``, ``locked``, ``wrong password``);
        people get :data:`LOGIN_REFUSED` whatever it is, so the answer never tells a locked
        name from an unknown one. ``admin_may_pass_lock`` lets an admin with the right password
        in although the name is locked (a login from this computer or with an admin's token):
        nobody else can then lock the admin out.
        """
        row = self._row(
            "SELECT * FROM users WHERE name = ?", (name if isinstance(name, str) else "",)
        )
        if row is None:
            burn_verification_time(password)
            return None, "unknown name"
        locked_until = parse_time(row["locked_until"])
        now = parse_time(now_iso())
        if (
            locked_until is not None
            and locked_until > now
            and not (admin_may_pass_lock and row["role"] == "admin")
        ):
            burn_verification_time(password)
            return None, "locked"
        matches, needs_rehash = verify_password(row["password_hash"], password)
        with self._write() as conn:
            if not matches:
                failures = row["failed_logins"] + 1
                lock = (
                    (now + LOCKOUT).isoformat(timespec="milliseconds")
                    if failures >= MAX_FAILED_LOGINS
                    else None
                )
                conn.execute(
                    "UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?",
                    (0 if lock else failures, lock, row["id"]),
                )
                return None, "wrong password"
            conn.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", (row["id"],)
            )
            if needs_rehash and len(password) >= MIN_PASSWORD_CHARS:
                # Hashed with older, weaker settings: store today's hash while we hold the password.
                conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?",
                    (hash_password(password), row["id"]),
                )
        return self.user_by_id(row["id"]), ""
