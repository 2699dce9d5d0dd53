"""Password hashing (Argon2id, through the maintained argon2-cffi library) and generation.

Hashes carry their own parameters, so :func:`verify_password` also says when a stored hash was
made with weaker settings than today's and should be replaced at the next successful login.
Unknown user names are checked against a fixed dummy hash, so a login attempt takes as long
whether or not the name exists.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from biosegment.errors import InputError

__all__ = [
    "hash_password",
    "verify_password",
    "generate_password",
    "check_new_password",
    "burn_verification_time",
    "verification_slot",
    "MIN_PASSWORD_CHARS",
    "VERIFICATIONS_AT_ONCE",
]

MIN_PASSWORD_CHARS = 10
_MAX_PASSWORD_CHARS = 1024
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a password anybody has")

#: Password verifications at once in this process. Each takes Argon2's memory (64 MiB) and keeps
#: its lanes busy; more at once only queue for the same cores, while a burst of logins would hold
#: every request thread of the web server and the memory of all of them.
VERIFICATIONS_AT_ONCE = 1
_VERIFICATION_SLOTS = threading.BoundedSemaphore(VERIFICATIONS_AT_ONCE)


@contextmanager
def verification_slot(wait_seconds: float) -> Iterator[bool]:
    """Hold one of the :data:`VERIFICATIONS_AT_ONCE` slots; yields False when none came free
    within ``wait_seconds`` (the caller answers "busy" without checking anything)."""
    free = _VERIFICATION_SLOTS.acquire(timeout=wait_seconds)
    try:
        yield free
    finally:
        if free:
            _VERIFICATION_SLOTS.release()


def check_new_password(password: str, *, where: str = "password") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"a password needs at least {MIN_PASSWORD_CHARS} characters", where=where)
    if len(password) > _MAX_PASSWORD_CHARS:
        raise InputError(
            f"a password may have at most {_MAX_PASSWORD_CHARS} characters", where=where
        )
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_new_password(password))


def verify_password(stored_hash: str, password: str) -> tuple[bool, bool]:
    """``(matches, needs_rehash)`` for ``password`` against ``stored_hash``."""
    if not isinstance(password, str) or len(password) > _MAX_PASSWORD_CHARS:
        return False, False
    try:
        _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, _HASHER.check_needs_rehash(stored_hash)


def burn_verification_time(password: str) -> None:
    """Spend as long as a real verification (for names that do not exist)."""
    verify_password(_DUMMY_HASH, password if isinstance(password, str) else "")


def generate_password() -> str:
    """A random password of 20 URL-safe characters (120 bits), meant to be shown once."""
    return secrets.token_urlsafe(15)
