"""Show the web UI on the desktop: a pywebview window, else the default browser, else the URL.

``biosegment run`` calls :func:`open_ui` from the main thread once the daemon serves its URL.
With a display and a pywebview GUI backend (Qt through ``pywebview[qt]``, the ``desktop``
extra, or GTK) it opens a window and returns when the window closes, then asks the daemon to
stop through ``on_close`` unless it runs as a service. Without a backend it opens the default
browser; without a display (a server, an SSH session) it prints the URL. Nothing here crashes
the daemon: a window that fails to start falls back to the next way.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import webbrowser
from typing import Any, Callable

from biosegment.config import display_available

__all__ = ["open_ui", "open_window", "window_backend", "WINDOW_TITLE"]

log = logging.getLogger(__name__)

WINDOW_TITLE = "BioSegment"
_QT_BINDINGS = ("PyQt6.QtWebEngineWidgets", "PySide6.QtWebEngineWidgets",
                "PyQt5.QtWebEngineWidgets", "PySide2.QtWebEngineWidgets")


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


def open_window(url: str, *, gui: str | None = None, title: str = WINDOW_TITLE,
                on_started: Callable[[Any], None] | None = None) -> None:
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


def open_ui(url: str, *, on_close: Callable[[], None], service: bool,
            display: bool | None = None) -> str:
    """Show the UI at ``url``; returns how: ``window``, ``browser`` or ``printed``.

    ``display`` overrides the display check (None: look). ``on_close`` is called when the
    window is closed, unless ``service`` is true (a service keeps serving without a window).
    """
    if display is None:
        display = display_available()
    if not display:
        print(f"No display found: open {url} in a browser.", flush=True)
        return "printed"
    gui = window_backend()
    if gui is not None:
        try:
            open_window(url, gui=gui)
        except Exception:  # a broken GUI stack must not take the daemon down with it
            log.exception("the %s window could not be opened; using the browser instead", gui)
        else:
            if not service:
                on_close()
            return "window"
    try:
        if webbrowser.open(url):
            print(f"Opened {url} in the default browser.", flush=True)
            return "browser"
    except webbrowser.Error:
        pass
    print(f"Open {url} in a browser.", flush=True)
    return "printed"
