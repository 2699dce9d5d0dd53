"""Open the default browser and tell whether it really stayed open.

:func:`webbrowser.open` answers True as soon as a browser program has been started, even when
that program ends a moment later (Chromium run as root refuses to start, for one). So
:func:`open_in_browser` watches the browser processes it started for a short moment and says
what happened: the browser is open, it handed the address to a browser already running, it
ended at once (with its exit status), or none could be started. Every message names the
address, so the person can always open it themselves.

Where the processes can be watched (Linux's ``/proc``), the browser programs are the child
processes that appeared during the call and lead a session of their own: :mod:`webbrowser`
starts them that way, and no other child of BioSegment does. They are only looked at, never
waited for, so the :mod:`subprocess` objects that started them stay in charge of them.
"""

from __future__ import annotations

import os
import signal
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrowserOutcome", "open_in_browser", "SETTLE_SECONDS"]

#: How long a browser program must keep running to count as open.
SETTLE_SECONDS = 2.0
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class BrowserOutcome:
    """What came of asking for the default browser.

    ``state`` is ``open`` (a browser program keeps running), ``handed-over`` (the program
    ended well: it gave the address to a browser already running), ``ended`` (it ended at once
    without showing anything: ``status`` says how) or ``none`` (no browser could be started).
    """

    state: str
    url: str
    name: str = ""
    status: str = ""
    pid: int | None = None

    @property
    def opened(self) -> bool:
        return self.state in ("open", "handed-over")

    def message(self) -> str:
        """One line for the person, with the address in it."""
        named = f" ({self.name})" if self.name else ""
        if self.state == "open":
            return f"Opened {self.url} in the default browser{named}."
        if self.state == "handed-over":
            return f"Opened {self.url} in the default browser."
        if self.state == "ended":
            how = f" ({self.status})" if self.status else ""
            hint = "; browsers often refuse to run as root" if _running_as_root() else ""
            return (
                f"The default browser{named} ended at once{how}{hint}: "
                f"open {self.url} in a browser."
            )
        return f"No browser could be started; open {self.url} in a browser."


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True, slots=True)
class _Process:
    name: str
    state: str
    parent: int
    session: int
    exit_code: int | None


def _read_process(pid: int) -> _Process | None:
    """The parts of ``/proc/PID/stat`` needed here; None once the process is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (name) state ppid pgrp session ...": the name may hold spaces and parentheses.
    name = text[text.find("(") + 1 : text.rfind(")")]
    fields = text[text.rfind(")") + 2 :].split()
    try:
        exit_code = int(fields[49]) if len(fields) > 49 else None
        return _Process(name, fields[0], int(fields[1]), int(fields[3]), exit_code)
    except (IndexError, ValueError):
        return None


def _session_leading_children() -> dict[int, str]:
    """This process's children that lead their own session: pid -> program name."""
    me = os.getpid()
    found: dict[int, str] = {}
    try:
        entries = [entry.name for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return found
    for entry in entries:
        pid = int(entry)
        process = _read_process(pid)
        if process is not None and process.parent == me and process.session == pid:
            found[pid] = process.name
    return found


def _how_it_ended(exit_code: int | None) -> str:
    if exit_code is None:
        return ""  # already collected by its subprocess object: the status is not known here
    if os.WIFSIGNALED(exit_code):
        number = os.WTERMSIG(exit_code)
        try:
            return f"stopped by {signal.Signals(number).name}"
        except ValueError:
            return f"stopped by signal {number}"
    return f"exit status {os.WEXITSTATUS(exit_code)}"


def open_in_browser(url: str, *, settle: float = SETTLE_SECONDS) -> BrowserOutcome:
    """Ask the default browser to show ``url``, then say what came of it (see the module)."""
    watchable = _PROC.is_dir() and hasattr(os, "WIFSIGNALED")
    before = _session_leading_children() if watchable else {}
    try:
        asked = webbrowser.open(url)
    except webbrowser.Error:
        asked = False
    if not asked:
        return BrowserOutcome("none", url)
    if not watchable:
        return BrowserOutcome("handed-over", url)
    started = {pid: name for pid, name in _session_leading_children().items() if pid not in before}
    if not started:
        # webbrowser waited for the program itself, and it ended well.
        return BrowserOutcome("handed-over", url)
    deadline = time.monotonic() + settle
    while True:
        ended: dict[int, _Process | None] = {}
        for pid in started:
            process = _read_process(pid)
            if process is None or process.state in ("Z", "X"):
                ended[pid] = process
        if len(ended) < len(started) and time.monotonic() >= deadline:
            pid = next(pid for pid in started if pid not in ended)
            return BrowserOutcome("open", url, name=started[pid], pid=pid)
        if len(ended) == len(started):
            break
        time.sleep(0.1)
    pid, process = next(iter(ended.items()))
    exit_code = process.exit_code if process is not None else None
    if exit_code == 0:
        return BrowserOutcome("handed-over", url, name=started[pid])
    return BrowserOutcome("ended", url, name=started[pid], status=_how_it_ended(exit_code))
