"""A private X display for the desktop tests: Xvfb, a window manager on it, and process trees.

Each program a test needs is looked up first; a missing one skips the test with a message
naming the Debian package (``make test`` installs them from packaging/system-packages.txt).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["require", "virtual_display", "window_manager", "process_tree", "alive", "windows"]


def require(program: str, package: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (packaging/system-packages.txt: {package})")


@contextmanager
def virtual_display() -> Iterator[str]:
    """A virtual X display (``:N``) of its own, torn down afterwards."""
    require("Xvfb", "xvfb")
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
    try:
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


@contextmanager
def window_manager(display: str) -> Iterator[None]:
    """A small window manager on ``display``: it turns a close request (``wmctrl -c``, what its
    close button sends) into WM_DELETE_WINDOW for the window, as a desktop's does."""
    require("matchbox-window-manager", "matchbox-window-manager")
    manager = subprocess.Popen(
        ["matchbox-window-manager", "-use_titlebar", "no"],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        assert manager.poll() is None, "the window manager did not start"
        yield
    finally:
        manager.terminate()
        manager.wait(10)


def windows(display: str) -> list[str]:
    """The titles of the windows the window manager manages on ``display``."""
    listing = subprocess.run(
        ["wmctrl", "-l"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [line.split(None, 3)[-1] for line in listing.stdout.splitlines() if line.strip()]


def _parents() -> dict[int, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        found[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    return found


def process_tree(pid: int) -> set[int]:
    """``pid`` and every process below it, now."""
    parents = _parents()
    tree = {pid}
    grew = True
    while grew:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return tree


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (a zombie has ended: it only waits to be collected)."""
    running = set()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X"):
            running.add(pid)
    return running
