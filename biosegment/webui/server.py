"""Serve the web UI with waitress: ``create_server(config, jobs=...)`` for the daemon and tests.

The server binds when it is created (port 0 picks a free port, which tests use), exposes its
``url``, serves until ``close()`` is called from any thread, and then closes its sockets, its
worker threads and the app's catalog and readers. It runs waitress's event loop in short rounds
so that stopping never has to close sockets under a loop that is still polling them.

Slow or idle clients cannot starve the others: the server holds many connections (polled, not
selected, so there is no 1024-descriptor ceiling), a connection that sends nothing for
:data:`CHANNEL_TIMEOUT_S` is closed, and so is one whose request header has been arriving for
that long, however slowly it trickles in. Waiting connections cost no request thread: waitress
hands a request to a thread only once it has arrived whole.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server as waitress_server

from biosegment.accounts import require_accounts_for_exposure
from biosegment.config import Config
from biosegment.webui.app import create_app
from biosegment.webui.context import EXTENSION_KEY

try:  # POSIX
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

__all__ = ["WebServer", "create_server", "SERVER_THREADS", "CHANNEL_TIMEOUT_S", "MAX_CONNECTIONS"]

log = logging.getLogger(__name__)

#: Request threads: a viewer asks for several tiles at once; keep them from queueing.
SERVER_THREADS = 8
#: Seconds a connection may stay silent, or take to send one request's header, before it is
#: closed (waitress's default, 120 s, lets a hundred idle sockets hold the server for minutes).
CHANNEL_TIMEOUT_S = 15
#: Open connections at most (waitress's default is 100); fewer when the process may open
#: fewer files, so that a flood of sockets never leaves the catalog without descriptors.
MAX_CONNECTIONS = 1000
#: FD_SETSIZE of Python's select() on Windows, where there is no poll().
_WINDOWS_SELECT_SOCKETS = 512
#: A request's header (request line, headers, cookies) is small; waitress allows 256 KiB.
MAX_HEADER_BYTES = 64 * 2**10
# How often (seconds) idle and slow connections are looked for (waitress's default: 30).
_CLEANUP_INTERVAL_S = 1
_LOOP_ROUND_S = 0.25


class _HeaderDeadlineChannel(HTTPChannel):
    """A waitress connection whose request header must arrive whole within the timeout.

    waitress closes a connection that has been silent for ``channel_timeout``, measured from
    its last activity; a client that trickles a header one byte at a time stays active forever.
    While a header is incomplete this channel reports, as its last activity, the moment the
    request began, so the same timeout then bounds the whole header. Bodies are not affected:
    once the header is in, a slow but steady upload stays open.
    """

    _activity = 0.0
    _header_began: float | None = None

    @property  # type: ignore[override]
    def last_activity(self) -> float:
        pending = self.request
        if pending is not None and not pending.headers_finished and self._header_began:
            return min(self._activity, self._header_began)
        return self._activity

    @last_activity.setter
    def last_activity(self, moment: float) -> None:
        self._activity = moment

    def received(self, data: bytes) -> bool:
        before = self.request
        result = super().received(data)
        if self.request is None:
            self._header_began = None
        elif self.request is not before:
            self._header_began = time.time()
        return result


def _connection_limit() -> int:
    """:data:`MAX_CONNECTIONS`, or half the files this process may open if that is less."""
    if resource is None:  # Windows: waitress falls back to select(), which takes 512 sockets
        return min(MAX_CONNECTIONS, _WINDOWS_SELECT_SOCKETS - 12)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(64, min(MAX_CONNECTIONS, soft // 2))


def _guard_trigger(server) -> None:
    """Make waitress's wake-up pipe safe to pull from any thread at any time.

    ``close()`` and the request threads pull the trigger to wake the loop, but the loop thread
    closes it when it shuts down. Unguarded, a pull that comes just after that writes to a
    closed descriptor (``OSError: EBADF``) or, worse, to whatever file or socket was opened
    since under the same number. Here pulling and closing share a lock, a pull after the close
    does nothing, and a pull never blocks (a full pipe already wakes the loop).
    """
    trigger = server.trigger
    lock = threading.RLock()
    pull, close = trigger.pull_trigger, trigger.close
    descriptor = getattr(trigger, "trigger", None)
    if isinstance(descriptor, int):  # POSIX: a pipe whose write end is blocking
        os.set_blocking(descriptor, False)
    elif descriptor is not None:  # pragma: no cover - Windows: a socket
        descriptor.setblocking(False)

    def guarded_pull(thunk=None) -> None:
        with lock:
            if getattr(trigger, "_closed", False):
                return
            try:
                pull(thunk)
            except OSError:  # full (the loop will wake anyway) or already gone
                pass

    def guarded_close() -> None:
        with lock:
            close()

    trigger.pull_trigger = guarded_pull
    trigger.close = guarded_close


def _transport_limit(app) -> int:
    """waitress's own cap, above Flask's: bodies a little too large still reach Flask and get
    its JSON 413 naming the field; far larger ones are cut off before they are buffered."""
    return 2 * app.config["MAX_CONTENT_LENGTH"] + 2**20


class WebServer:
    """A bound waitress server around one app; ``serve_forever()`` blocks until ``close()``."""

    def __init__(
        self,
        app,
        *,
        host: str,
        port: int,
        threads: int = SERVER_THREADS,
        channel_timeout_s: int = CHANNEL_TIMEOUT_S,
    ):
        self.app = app
        self._server = waitress_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="BioSegment",
            clear_untrusted_proxy_headers=True,
            max_request_body_size=_transport_limit(app),
            max_request_header_size=MAX_HEADER_BYTES,
            connection_limit=_connection_limit(),
            channel_timeout=channel_timeout_s,
            cleanup_interval=_CLEANUP_INTERVAL_S,
        )
        self._server.channel_class = _HeaderDeadlineChannel
        _guard_trigger(self._server)
        self._state = threading.RLock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False
        self._loop_thread: int | None = None

    @property
    def host(self) -> str:
        return self._server.effective_host

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve until :meth:`close`; returns at once if the server was closed before."""
        with self._state:
            if self._stop.is_set() or self._serving:
                return
            self._serving = True
            self._loop_thread = threading.get_ident()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_LOOP_ROUND_S, map=self._server._map, count=1, use_poll=True)
        finally:
            try:
                self._shut_down()
            finally:
                self._stopped.set()

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving (from any thread, any number of times) and release everything the app
        holds. Never raises; returns once the loop has stopped and its sockets are closed."""
        with self._state:
            first = not self._stop.is_set()
            self._stop.set()
            serving = self._serving
        if serving:
            if self._loop_thread == threading.get_ident():
                return  # called from the loop itself: it stops at the end of this round
            self._server.pull_trigger()  # a no-op once the loop has closed the trigger
        elif first:
            try:
                self._shut_down()
            finally:
                self._stopped.set()
        if not self._stopped.wait(timeout):
            log.warning("web server did not stop within %.0f s", timeout)

    def _shut_down(self) -> None:
        """Close the worker threads, every socket and the trigger, then the app's state; each
        step runs even if one before it failed."""
        try:
            self._server.task_dispatcher.shutdown(timeout=5)
        except Exception:
            log.exception("web server threads did not shut down cleanly")
        for dispatcher in list(self._server._map.values()):
            try:
                dispatcher.close()
            except Exception:
                log.exception("could not close %r", dispatcher)
        self._server._map.clear()
        try:  # the trigger and listening socket too, were either out of the map; never twice
            self._server.close()
        except Exception:
            log.exception("could not close the listening socket")
        state = self.app.extensions.get(EXTENSION_KEY)
        if state is not None:
            try:
                state.close()
            except Exception:
                log.exception("the web UI's catalog and readers did not close cleanly")

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_server(
    config: Config, jobs: object | None = None, *, host: str | None = None, port: int | None = None
) -> WebServer:
    """Build the app for ``config`` and bind it to ``config.server`` (or ``host``/``port``)."""
    host = host or config.server.host
    # SPEC 8: beyond 127.0.0.1 only with accounts; the app then asks every request for them.
    config = require_accounts_for_exposure(config, host)
    app = create_app(config, jobs=jobs)
    return WebServer(app, host=host, port=config.server.port if port is None else port)
