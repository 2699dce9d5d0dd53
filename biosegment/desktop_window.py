"""The desktop window's own process: ``python -m biosegment.desktop_window URL --gui qt``.

:func:`biosegment.desktop.open_ui` starts this module as a child process, so that a GUI toolkit
that fails, even by aborting (Qt does when a platform plugin or a library is missing), ends
only this process and never the daemon that serves the UI. The protocol with the parent is
small: a line ``window-shown`` on standard output once the page has loaded, a line
``window-closed`` once the person has closed it, exit status 0 when the person closed the window (or
the parent asked it to close with SIGTERM), anything else when the window failed; Qt's own
messages go to standard error, where the parent reads the reason it reports.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from biosegment.desktop import CLOSED_LINE, SHOWN_LINE, WINDOW_TITLE, open_window

__all__ = ["main"]


def _watch(window, closing: threading.Event) -> None:
    """Report the window once loaded; close it when asked to; end once it has closed.

    pywebview runs this in a thread the interpreter waits for at exit: it must end when the
    person closes the window (the window manager's close button), or the process would stay
    behind, with its QtWebEngine helpers, after the window is gone.
    """
    closed = window.events.closed
    while not window.events.loaded.wait(0.2):
        if closing.is_set() or closed.is_set():
            break
    else:
        print(SHOWN_LINE, flush=True)
    while not closed.is_set():
        if closing.wait(0.2):
            if not closed.is_set():
                window.destroy()
            return  # the parent asked: it knows the window goes
    print(CLOSED_LINE, flush=True)


def _close_at_end_of_input(closing: threading.Event) -> None:
    # The parent holds our standard input: it ends when the parent closes it or dies, and a
    # window whose daemon has gone would only show a dead page.
    try:
        while sys.stdin.read(4096):
            pass
    except (OSError, ValueError):
        pass
    closing.set()


def _close_on_sigterm(closing: threading.Event) -> None:
    signal.sigwait({signal.SIGTERM})
    closing.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m biosegment.desktop_window")
    parser.add_argument("url")
    parser.add_argument("--gui", default=None)
    parser.add_argument("--title", default=WINDOW_TITLE)
    args = parser.parse_args(argv)
    closing = threading.Event()
    # Ctrl-C in the terminal reaches the whole process group: the daemon decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        # SIGTERM means "close the window". The GUI loop holds the main thread, where Python
        # handlers would run, so every thread blocks it and one waits for it instead.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_close_on_sigterm, args=(closing,), daemon=True).start()
    threading.Thread(target=_close_at_end_of_input, args=(closing,), daemon=True).start()
    open_window(
        args.url, gui=args.gui, title=args.title, on_started=lambda window: _watch(window, closing)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
