"""The desktop window never takes the daemon down.

`biosegment run` under Xvfb, with Qt's real xcb platform: the window appears on the X display
in its own process; when that process aborts the daemon keeps answering, says why in one line
and falls back to the browser; closing the window stops `run` cleanly. With a Qt platform that
does not exist, Qt aborts at start and the UI keeps answering all the same.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from biosegment.desktop import window_backend
from webui_fixtures import make_demo_folder

REPO = Path(__file__).resolve().parents[1]
SHOWN = re.compile(r"the desktop window shows the UI \(process (\d+)\)")

pytestmark = pytest.mark.skipif(
    window_backend() != "qt", reason="no Qt backend for pywebview (biosegment[test] has it)"
)


@pytest.fixture
def xvfb_display():
    """A private virtual X display (``:N``), torn down after the test."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (packaging/system-packages.txt: xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as numbers:
        number = numbers.readline().strip()
    assert number, "Xvfb did not report its display"
    yield f":{number}"
    server.terminate()
    server.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunProcess:
    """`biosegment run` on a demo folder, its output collected line by line."""

    def __init__(self, root: Path, env: dict):
        self.port = free_port()
        config = root / "biosegment.toml"
        config.write_text(
            f'data_dir = "."\n[server]\nhost = "127.0.0.1"\nport = {self.port}\n', encoding="utf-8"
        )
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "biosegment", "--config", str(config), "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str | re.Pattern, timeout: float = 120) -> re.Match:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            if self.process.poll() is not None and not any(regex.search(x) for x in self.lines):
                break
            time.sleep(0.1)
        raise AssertionError(
            f"no line matching {regex.pattern!r}; exit "
            f"{self.process.poll()}; output:\n" + "".join(self.lines)
        )

    def answers(self) -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/api/v1/datasets", timeout=10
        ) as response:
            return response.status == 200 and b"isbi2012-demo" in response.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def environment(display: str, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    # `true` stands in for the default browser: webbrowser runs it and counts it as opened.
    env.update(PYTHONPATH=str(REPO), DISPLAY=display, BROWSER="true", **extra)
    return env


def window_titles(display: str) -> str:
    listing = subprocess.run(
        ["xwininfo", "-root", "-tree"],
        env={"DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return listing.stdout


def test_a_window_that_aborts_leaves_the_daemon_serving_and_says_why(tmp_path, xvfb_display):
    if shutil.which("xwininfo") is None:
        pytest.skip("xwininfo is not installed (packaging/system-packages.txt: x11-utils)")
    run = RunProcess(make_demo_folder(tmp_path / "data"), environment(xvfb_display))
    try:
        child = int(run.wait_for(SHOWN).group(1))
        assert child != run.process.pid
        assert '"BioSegment"' in window_titles(xvfb_display)  # a real xcb window on the display
        assert run.answers()
        os.kill(child, signal.SIGABRT)  # what Qt does when a library is missing
        reason = run.wait_for(r"The desktop window failed \(stopped by SIGABRT")
        assert "using the browser instead" in reason.string
        run.wait_for(r"Opened http://127\.0\.0\.1:\d+/ in the default browser")
        assert run.process.poll() is None and run.answers()
        assert '"BioSegment"' not in window_titles(xvfb_display)
    finally:
        code = run.stop()
    assert code == 0, "".join(run.lines)


def test_closing_the_window_stops_run_cleanly(tmp_path, xvfb_display):
    run = RunProcess(make_demo_folder(tmp_path / "data"), environment(xvfb_display))
    try:
        child = int(run.wait_for(SHOWN).group(1))
        assert run.answers()
        os.kill(child, signal.SIGTERM)  # the window's "close" (a window manager's close button)
        assert run.process.wait(90) == 0, "".join(run.lines)
        assert any(line.strip() == "stopped" for line in run.lines), run.lines
        assert not any("failed" in line for line in run.lines), run.lines
    finally:
        run.stop()


def test_a_qt_platform_that_does_not_exist_falls_back_and_the_ui_keeps_answering(
    tmp_path, xvfb_display
):
    run = RunProcess(
        make_demo_folder(tmp_path / "data"),
        environment(xvfb_display, QT_QPA_PLATFORM="nonexistent"),
    )
    try:
        reason = run.wait_for(r"The desktop window failed \((.*)\); using the browser instead")
        # Qt's own words name the missing platform plugin, on one line
        assert "stopped by SIGABRT" in reason.group(1) and "nonexistent" in reason.group(1)
        run.wait_for(r"in the default browser")
        time.sleep(1)
        assert run.process.poll() is None, "".join(run.lines)
        assert run.answers()
    finally:
        code = run.stop()
    assert code == 0, "".join(run.lines)
