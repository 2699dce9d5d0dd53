"""The waitress server the daemon runs: binds, reports its URL, serves threads, stops cleanly."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from biosegment.webui.server import create_server
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder


def test_server_serves_concurrent_tiles_and_stops_from_another_thread(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    server = create_server(config_for(root))
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    http = Http(server.url)
    paths = [f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/{z}/0/0/0.png" for z in range(5)] * 4
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda p: http.get(p).status, paths))
    assert statuses == [200] * len(paths)
    started = time.monotonic()
    server.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0, "the port is still open"
    server.close()  # a second close is harmless


def test_a_server_that_never_served_closes_too(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    server = create_server(config_for(root))
    port = server.port
    server.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
