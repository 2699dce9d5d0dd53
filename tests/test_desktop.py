"""Desktop: the pywebview window shows the dashboard (Qt offscreen, and Qt's real xcb platform
under Xvfb); the window runs in its own process, so Qt failing, even by abort, leaves `run`
serving and falls back to the browser with the reason; without a display, `run` prints the URL
and keeps serving until stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from biosegment.desktop import open_ui, window_backend
from webui_fixtures import make_demo_folder

REPO = Path(__file__).resolve().parents[1]
_DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")

WINDOW_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import webview
    from biosegment.desktop import open_window
    from biosegment.webui.server import create_server
    sys.path.insert(0, sys.argv[2])
    from webui_fixtures import config_for

    server = create_server(config_for(__import__("pathlib").Path(sys.argv[1])))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def close_when_loaded():
        while not webview.windows:
            time.sleep(0.05)
        window = webview.windows[0]
        window.events.loaded.wait(60)
        print("TITLE=" + str(window.evaluate_js("document.title")), flush=True)
        # the dashboard script has fetched the catalog once it set this attribute
        deadline = time.monotonic() + 60
        datasets = ""
        while not datasets and time.monotonic() < deadline:
            datasets = window.evaluate_js("document.body.dataset.datasets || ''")
            time.sleep(0.1)
        print("DATASETS=" + str(datasets), flush=True)
        window.destroy()

    threading.Thread(target=close_when_loaded, daemon=True).start()
    open_window(server.url)
    print("CLOSED", flush=True)
    server.close()
""")


def environment_without_display() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _DISPLAY_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_window_opens_under_qt_offscreen_and_reports_the_dashboard_title(tmp_path):
    if window_backend() != "qt":
        pytest.skip(
            "no Qt backend for pywebview (PyQt6 + PyQt6-WebEngine + qtpy); "
            "`make test` installs biosegment[test]"
        )
    root = make_demo_folder(tmp_path / "data")
    env = environment_without_display()
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run(
        [sys.executable, "-c", WINDOW_SCRIPT, str(root), str(REPO / "tests")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "TITLE=BioSegment: dashboard" in done.stdout, done.stdout + done.stderr
    assert "DATASETS=1" in done.stdout, done.stdout + done.stderr
    assert "CLOSED" in done.stdout
    assert done.returncode == 0, done.stderr


def test_open_ui_without_a_display_prints_the_url(capsys):
    closed = []
    how = open_ui(
        "http://127.0.0.1:9/", on_close=lambda: closed.append(True), service=False, display=False
    )
    assert how == "printed" and closed == []
    assert "http://127.0.0.1:9/" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_without_a_display_serves_and_stops_on_ctrl_c(tmp_path):
    root = make_demo_folder(tmp_path / "data")
    port = free_port()
    config = root / "biosegment.toml"
    config.write_text(
        f'data_dir = "."\n[server]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "biosegment", "--config", str(config), "run"],
        env=environment_without_display(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "No display found" in line:
                break
        assert any("No display found" in line for line in lines), lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200 and b"BioSegment" in response.read()
        assert process.poll() is None, "run must keep serving without a window"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_display_is_found_from_the_environment_given(monkeypatch):
    from biosegment import config

    monkeypatch.setattr(config.sys, "platform", "linux")
    assert not config.display_available({})
    assert config.display_available({"DISPLAY": ":0"})
    assert config.display_available({"WAYLAND_DISPLAY": "wayland-0"})
    assert config.display_available({"QT_QPA_PLATFORM": "offscreen"})
    assert not config.display_available({"QT_QPA_PLATFORM": "xcb"})
    monkeypatch.setattr(config.sys, "platform", "darwin")
    assert config.display_available({})
