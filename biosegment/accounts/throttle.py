"""Slow down password guessing by client address, before any password is checked.

The per-name lockout (five wrong passwords lock a name) does nothing against someone who tries
many names, and checking a password costs real CPU (that is the point of the hash). A
:class:`LoginThrottle` counts failed logins per client address in a sliding window; past the
limit, further attempts from that address are refused without being checked until old failures
age out. An attempt is counted when it is admitted, before its password is checked, and taken
back if it succeeds: admitting and counting are one step under one lock, so attempts sent in
parallel cannot all pass the check while none has been counted yet. It lives in memory: a restart forgets it, which costs an attacker nothing they could
not get by waiting, and keeps the accounts database free of per-address rows.
"""

from __future__ import annotations

import threading
import time
from collections import deque

__all__ = ["LoginThrottle", "MAX_FAILURES_PER_ADDRESS", "THROTTLE_WINDOW_S"]

#: Failed logins one address may make within :data:`THROTTLE_WINDOW_S` seconds.
MAX_FAILURES_PER_ADDRESS = 20
THROTTLE_WINDOW_S = 60.0
# Addresses remembered at most; the oldest are forgotten first (a flood of spoofed sources
# must not grow memory without bound).
_MAX_ADDRESSES = 10_000


class LoginThrottle:
    """Failed-login counts per client address over a sliding window."""

    def __init__(
        self, *, max_failures: int = MAX_FAILURES_PER_ADDRESS, window_s: float = THROTTLE_WINDOW_S
    ):
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, address: str | None) -> float:
        """Count an attempt from ``address`` as failed, unless it is over the limit.

        Return 0 when the attempt is admitted (it stays counted until :meth:`succeeded` takes
        it back), or the seconds until ``address`` may try again (nothing is counted).
        """
        now = time.monotonic()
        with self._lock:
            key = address or "?"
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                return max(0.1, times[0] + self.window_s - now)
            times.append(now)
            if len(self._failures) > _MAX_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))
            return 0.0

    def succeeded(self, address: str | None) -> None:
        """An admitted attempt from ``address`` was right: it no longer counts as failed."""
        with self._lock:
            times = self._failures.get(address or "?")
            if times:
                times.pop()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times
