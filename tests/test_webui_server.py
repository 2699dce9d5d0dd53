"""The waitress server the daemon runs: binds, reports its URL, serves threads, stops cleanly."""

from __future__ import annotations

import gc
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

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


class _StopThatLetsTheLoopFinishFirst(threading.Event):
    """The race seen in a test run: close() is descheduled right after it asks the loop to stop,
    and the loop thread notices, shuts down and closes its sockets before close() goes on."""

    def __init__(self, server):
        super().__init__()
        self.server = server

    def set(self):
        super().set()
        self.server._stopped.wait(5)


def test_close_never_raises_when_the_loop_has_already_shut_down(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    server = create_server(config_for(root))
    server._stop = _StopThatLetsTheLoopFinishFirst(server)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    assert Http(server.url).get("/api/v1/datasets").status == 200
    server.close()  # raised OSError (EBADF) pulling the closed trigger, or wrote to a reused fd
    thread.join(10)
    assert not thread.is_alive()
    server.close()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_start_and_close_many_times_from_other_threads_with_requests_in_flight(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    config = config_for(root)
    path = f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/0/0/0/0.png"
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen every window
    try:
        before = _open_descriptors()
        for round_ in range(30):
            server = create_server(config)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            if round_ % 3 == 0:  # closed before its loop ever ran, then asked to serve
                server.close()
                thread.start()
            else:
                thread.start()
                http = Http(server.url)
                clients = [
                    threading.Thread(target=_get_quietly, args=(http, path), daemon=True)
                    for _ in range(4)
                ]
                for client in clients:
                    client.start()
                time.sleep(0.01 * (round_ % 5))
                errors: list[BaseException] = []
                closers = [
                    threading.Thread(target=_close_recording, args=(server, errors))
                    for _ in range(2)
                ]
                for closer in closers:
                    closer.start()
                server.close()
                for closer in closers:
                    closer.join(15)
                    assert not closer.is_alive()
                assert errors == [], f"round {round_}: close() raised"
                for client in clients:
                    client.join(35)
            thread.join(15)
            assert not thread.is_alive(), f"round {round_}: the loop thread still runs"
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", server.port)) != 0
            server.close()
        gc.collect()
        assert _open_descriptors() <= before + 2, "sockets or pipes were left open"
    finally:
        sys.setswitchinterval(switch)


def _get_quietly(http: Http, path: str) -> None:
    try:
        http.get(path)
    except OSError:  # the server closed under the request: expected here
        pass


def _close_recording(server, errors: list[BaseException]) -> None:
    try:
        server.close()
    except BaseException as error:  # noqa: BLE001 - the test reports it
        errors.append(error)
