"""Serve the web UI with waitress: ``create_server(config, jobs=...)`` for the daemon and tests.

The server binds when it is created (port 0 picks a free port, which tests use), exposes its
``url``, serves until ``close()`` is called from any thread, and then closes its sockets, its
worker threads and the app's catalog and readers. It runs waitress's event loop in short rounds
so that stopping never has to close sockets under a loop that is still polling them.
"""

from __future__ import annotations

import logging
import threading

from waitress import wasyncore
from waitress.server import create_server as waitress_server

from biosegment.accounts import require_accounts_for_exposure
from biosegment.config import Config
from biosegment.webui.app import create_app
from biosegment.webui.context import EXTENSION_KEY

__all__ = ["WebServer", "create_server", "SERVER_THREADS"]

log = logging.getLogger(__name__)

#: Request threads: a viewer asks for several tiles at once; keep them from queueing.
SERVER_THREADS = 8
_LOOP_ROUND_S = 0.25


def _transport_limit(app) -> int:
    """waitress's own cap, above Flask's: bodies a little too large still reach Flask and get
    its JSON 413 naming the field; far larger ones are cut off before they are buffered."""
    return 2 * app.config["MAX_CONTENT_LENGTH"] + 2**20


class WebServer:
    """A bound waitress server around one app; ``serve_forever()`` blocks until ``close()``."""

    def __init__(self, app, *, host: str, port: int, threads: int = SERVER_THREADS):
        self.app = app
        self._server = waitress_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="BioSegment",
            clear_untrusted_proxy_headers=True,
            max_request_body_size=_transport_limit(app),
        )
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False

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
        self._serving = True
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=_LOOP_ROUND_S, map=self._server._map, count=1)
        finally:
            self._shut_down()
            self._stopped.set()

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving (from any thread) and release everything the app holds."""
        if self._stop.is_set():
            self._stopped.wait(timeout)
            return
        self._stop.set()
        if self._serving:
            self._server.pull_trigger()
            if not self._stopped.wait(timeout):
                log.warning("web server did not stop within %.0f s", timeout)
        else:
            self._shut_down()
            self._stopped.set()

    def _shut_down(self) -> None:
        self._server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._server._map)
        state = self.app.extensions.get(EXTENSION_KEY)
        if state is not None:
            state.close()

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
