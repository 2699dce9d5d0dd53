"""Which addresses count as "this machine only", and the refusal to listen anywhere else
without accounts (SPEC 8).

Only ``127.0.0.1``, ``::1`` and ``localhost`` are loopback here, the addresses BioSegment itself
offers by default. Every other address needs accounts, including the rest of 127.0.0.0/8, which
container runtimes and port forwarders publish to other machines, and 0.0.0.0 or an empty host,
which listen everywhere. Failing closed on those costs a ``biosegment users add``; failing open
would hand the lab's unpublished data to anyone on the network.
"""

from __future__ import annotations

from dataclasses import replace

from biosegment.accounts.store import accounts_exist
from biosegment.config import Config
from biosegment.errors import BioSegmentError

__all__ = ["LOOPBACK_HOSTS", "is_loopback", "ExposureRefused", "require_accounts_for_exposure"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


class ExposureRefused(BioSegmentError):
    """Asked to listen beyond this machine, but nobody could log in there."""


def is_loopback(host: str | None) -> bool:
    return (host or "").strip().lower() in LOOPBACK_HOSTS


def require_accounts_for_exposure(config: Config, host: str | None = None) -> Config:
    """Return ``config`` set to serve on ``host``; refuse a non-loopback host without accounts.

    The returned config names the host actually bound, so the web app, which reads it, asks
    every request for a login exactly when the server is reachable from elsewhere.
    """
    host = config.server.host if host is None else host
    if not is_loopback(host) and not accounts_exist(config.data_dir):
        raise ExposureRefused(
            f"refusing to listen on {host or 'every address'}: beyond 127.0.0.1 BioSegment "
            "requires accounts. Create an admin with `biosegment users add NAME --role admin` "
            "(or `biosegment init --admin`), or listen on 127.0.0.1"
        )
    if host != config.server.host:
        config = replace(config, server=replace(config.server, host=host))
    return config
