"""Slow or idle clients cannot starve the web server.

Connections that send part of a request and then hold it do not use up the server: others are
still answered at once, a connection that stays silent is closed, and so is one that trickles a
request header too slowly to ever finish; a body sent slowly after a whole header still arrives.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from contextlib import closing, contextmanager
from urllib.parse import urlsplit

import pytest

from biosegment.webui.app import create_app
from biosegment.webui.server import WebServer
from webui_fixtures import config_for, make_demo_folder, serve

PARTIAL = b"GET /api/v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_demo_folder(tmp_path_factory.mktemp("connections") / "data")


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _answer_within(address: tuple[str, int], seconds: float) -> int:
    connection = http.client.HTTPConnection(*address, timeout=seconds)
    try:
        connection.request("GET", "/api/v1/datasets")
        return connection.getresponse().status
    finally:
        connection.close()


@contextmanager
def _short_timeout_server(root, seconds: int):
    server = WebServer(
        create_app(config_for(root)), host="127.0.0.1", port=0, channel_timeout_s=seconds
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _address(server.url)
    finally:
        server.close()
        thread.join(10)


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_150_half_sent_requests_leave_others_answered_at_once(root):
    with serve(config_for(root)) as server:
        address = _address(server.url)
        holders = []
        try:
            for _ in range(150):
                sock = socket.create_connection(address, timeout=5)
                sock.sendall(PARTIAL)
                holders.append(sock)
            started = time.monotonic()
            assert _answer_within(address, 2.0) == 200
            assert time.monotonic() - started < 2.0
        finally:
            for sock in holders:
                sock.close()


def test_a_header_trickled_byte_by_byte_is_cut_off(root):
    with _short_timeout_server(root, 2) as address:
        with closing(socket.create_connection(address, timeout=5)) as sock:
            sock.sendall(PARTIAL)
            started = time.monotonic()
            closed = False
            while not closed and time.monotonic() - started < 8:
                try:
                    sock.sendall(b"X")  # one more byte of an endless header name
                except OSError:
                    closed = True
                    break
                time.sleep(0.25)
                closed = _closed_by_server(sock)
            assert closed, "the server kept a trickling header open"
            assert time.monotonic() - started < 5


def test_a_silent_connection_is_closed_and_a_slow_body_still_arrives(root):
    with _short_timeout_server(root, 2) as address:
        silent = socket.create_connection(address, timeout=5)
        uploader = socket.create_connection(address, timeout=10)
        with closing(silent), closing(uploader):
            body = b'{"name": "slowly sent annotation"}'
            uploader.sendall(
                b"POST /api/v1/datasets/isbi2012-demo/annotations HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            )
            for start in range(0, len(body), 4):  # about 4.5 s in all, past the 2 s timeout
                uploader.sendall(body[start : start + 4])
                time.sleep(0.5)
            reply = b""
            while chunk := uploader.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
            assert _closed_by_server(silent)
