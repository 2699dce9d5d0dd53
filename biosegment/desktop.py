"""Show the web UI on the desktop: a pywebview window, else the default browser, else the URL.

``biosegment run`` calls :func:`open_ui` from the main thread once the daemon serves its URL.
With a display and a pywebview GUI backend (Qt through ``pywebview[qt]``, the ``desktop``
extra, or GTK) it opens a window and returns when the window closes, then asks the daemon to
stop through ``on_close`` unless it runs as a service. The window lives in a child process
(:mod:`biosegment.desktop_window`): a GUI toolkit that fails, even by aborting as Qt does when
a library is missing, ends that process only; the daemon keeps serving, opens the default
browser instead and prints the reason in one line. Once the person has closed the window its
process must end: when it does not within :data:`WINDOW_EXIT_SECONDS`, it is ended. Without a
backend it opens the default browser (:mod:`biosegment.desktop_browser` says whether the
browser really stayed open); without a display (a server, an SSH session) it prints the URL.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from biosegment.config import display_available
from biosegment.desktop_browser import open_in_browser

__all__ = [
    "open_ui",
    "open_window",
    "window_backend",
    "WindowProcess",
    "WINDOW_TITLE",
    "SHOWN_LINE",
    "CLOSED_LINE",
    "WINDOW_EXIT_SECONDS",
]

log = logging.getLogger(__name__)

WINDOW_TITLE = "BioSegment"
#: The window process prints this line once the window has loaded the page ...
SHOWN_LINE = "window-shown"
#: ... and this one once the person has closed the window; its process ends right after.
CLOSED_LINE = "window-closed"
#: How long a closed window's process may take to end before it is ended.
WINDOW_EXIT_SECONDS = 15.0
_QT_BINDINGS = (
    "PyQt6.QtWebEngineWidgets",
    "PySide6.QtWebEngineWidgets",
    "PyQt5.QtWebEngineWidgets",
    "PySide2.QtWebEngineWidgets",
)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def window_backend() -> str | None:
    """The pywebview GUI to use: ``qt`` or ``gtk`` when installed (Qt first), else None."""
    if not _has_module("webview"):
        return None
    if _has_module("qtpy") and any(_has_module(name) for name in _QT_BINDINGS):
        return "qt"
    if _has_module("gi"):
        return "gtk"
    return None


def _prepare_qt() -> None:
    # Chromium inside QtWebEngine refuses to start as root with its sandbox on (containers,
    # some service setups); the page is our own local UI, so run it without.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"


def open_window(
    url: str,
    *,
    gui: str | None = None,
    title: str = WINDOW_TITLE,
    on_started: Callable[[Any], None] | None = None,
) -> None:
    """Open ``url`` in a pywebview window and block until it is closed (main thread only).

    ``on_started(window)`` runs in a helper thread once the GUI loop runs; it may wait for
    ``window.events.loaded``, call ``window.evaluate_js`` or ``window.destroy()``.
    """
    gui = gui or window_backend()
    if gui is None:
        raise RuntimeError("no pywebview GUI backend installed; install biosegment[desktop]")
    if gui == "qt":
        _prepare_qt()
    import webview

    window = webview.create_window(title, url, width=1400, height=900, min_size=(800, 600))
    if on_started is None:
        webview.start(gui=gui)
    else:
        webview.start(on_started, window, gui=gui)


def _reason(returncode: int, stderr_lines: list[str]) -> str:
    """One line saying why the window process ended badly, from its status and messages."""
    if returncode < 0:
        try:
            how = f"stopped by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"stopped by signal {-returncode}"
    else:
        how = f"exit status {returncode}"
    lines = [line.strip() for line in stderr_lines if line.strip()]
    # Qt names the missing piece first (then says it failed in general); else its last words.
    telling = [line for line in lines if any(word in line.lower() for word in _TELLING)]
    said = (telling[0] if telling else lines[-1]) if lines else ""
    said = said if len(said) <= 200 else said[:197] + "..."
    return f"{how}: {said}" if said else how


_TELLING = ("could not", "cannot", "needed", "failed", "error", "no qt platform", "not found")


class WindowProcess:
    """The window running in its own process (``biosegment.desktop_window``).

    A crash or abort there ends only that process; :meth:`wait` says how it ended.
    ``closed`` is set once the person has closed the window.
    """

    def __init__(self, url: str, gui: str, *, title: str = WINDOW_TITLE):
        command = [
            sys.executable,
            "-m",
            "biosegment.desktop_window",
            url,
            "--gui",
            gui,
            "--title",
            title,
        ]
        self.shown = threading.Event()
        self.closed = threading.Event()
        self._stderr: deque[str] = deque(maxlen=40)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            if line.strip() == SHOWN_LINE:
                self.shown.set()
                log.info("the desktop window shows the UI (process %d)", self.process.pid)
            elif line.strip() == CLOSED_LINE:
                self.closed.set()

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)
            log.debug("window: %s", line.rstrip())

    def close(self, timeout: float = 10.0) -> int:
        """Ask the window to close (end of its input), then end it if it does not."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def wait(self, stop: threading.Event | None = None) -> int:
        """Block until the window process ends (or ``stop`` is set: then close it).

        A process that outlives its closed window by :data:`WINDOW_EXIT_SECONDS` is ended,
        and counts as closed by the person (0).
        """
        closed_at: float | None = None
        while True:
            try:
                code = self.process.wait(0.25)
                break
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    code = self.close()
                    break
                if self.closed.is_set():
                    closed_at = closed_at or time.monotonic()
                    if time.monotonic() - closed_at > WINDOW_EXIT_SECONDS:
                        log.warning(
                            "the window was closed but its process %d did not end; ending it",
                            self.process.pid,
                        )
                        self.process.kill()
                        self.process.wait()
                        code = 0
                        break
        for reader in self._readers:
            reader.join(2)
        return code

    def failure(self, returncode: int) -> str:
        return _reason(returncode, list(self._stderr))


def open_ui(
    url: str,
    *,
    on_close: Callable[[], None],
    service: bool,
    display: bool | None = None,
    stop: threading.Event | None = None,
) -> str:
    """Show the UI at ``url``; returns how: ``window``, ``browser`` or ``printed``.

    ``display`` overrides the display check (None: look). The window runs in a child process
    so that its failure, even an abort inside the GUI toolkit, leaves the caller serving; it
    then falls back to the browser and prints why in one line. ``on_close`` is called when
    the person closes the window, unless ``service`` is true (a service keeps serving
    without a window). Setting ``stop`` closes the window and returns.
    """
    if display is None:
        display = display_available()
    if not display:
        print(f"No display found: open {url} in a browser.", flush=True)
        return "printed"
    gui = window_backend()
    if gui is not None:
        try:
            window = WindowProcess(url, gui)
        except OSError as exc:
            print(
                f"The desktop window could not start ({exc}); using the browser instead.",
                flush=True,
            )
        else:
            code = window.wait(stop)
            if code == 0 or (stop is not None and stop.is_set()):
                if not service and code == 0:
                    on_close()
                return "window"
            print(
                f"The desktop window failed ({window.failure(code)}); using the browser instead.",
                flush=True,
            )
    outcome = open_in_browser(url)
    print(outcome.message(), flush=True)
    return "browser" if outcome.opened else "printed"
