"""When BioSegment falls back to the browser, it says what really happened, with the address.

The browsers are small scripts named ``chromium``, found through ``$BROWSER`` and ``PATH``, so
Python's :mod:`webbrowser` drives them exactly as it drives Chromium: one that ends at once
(Chromium run as root does: "Running as root without --no-sandbox is not supported") is
reported as ended, with its exit status; one that keeps running is reported open. ``PATH``
holds nothing else, so no real browser of the machine joins in. Each case runs in a fresh
interpreter, since :mod:`webbrowser` remembers the browsers it found.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from job_fixtures import REPO, biosegment_env, make_folder, wait_for

URL = "http://127.0.0.1:8765/"
OPEN_IN_BROWSER = textwrap.dedent("""
    import sys
    from biosegment.desktop_browser import open_in_browser

    outcome = open_in_browser(sys.argv[1])
    print(outcome.message())
    print(f"state={outcome.state} pid={outcome.pid}")
""")


def programs(folder):
    """A folder for ``PATH`` with ``sleep`` in it and no browser."""
    folder.mkdir(exist_ok=True)
    (folder / "sleep").symlink_to(shutil.which("sleep"))
    return folder


def fake_browser(folder, body: str):
    """A program named ``chromium`` in ``folder`` that runs ``body`` (sh)."""
    programs(folder)
    program = folder / "chromium"
    program.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    program.chmod(0o755)
    return program


def browser_env(folder, browser: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY")}
    env.update(PYTHONPATH=str(REPO), PATH=str(folder))
    # a display is what makes webbrowser look for graphical browsers such as chromium
    env["DISPLAY"] = ":9876"
    if browser is not None:
        env["BROWSER"] = browser
    return env


def open_in_browser(env: dict) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_IN_BROWSER, URL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    message, state = done.stdout.strip().splitlines()[-2:]
    return message, state


def test_a_browser_that_ends_at_once_is_reported_with_its_status_and_the_address(tmp_path):
    program = fake_browser(
        tmp_path / "bin",
        # as Chromium does, it ends a moment after it started (webbrowser counts it started)
        'sleep 0.5; echo "Running as root without --no-sandbox is not supported." >&2; exit 1',
    )
    message, state = open_in_browser(browser_env(tmp_path / "bin", str(program)))
    assert state.startswith("state=ended"), (message, state)
    assert message.startswith("The default browser (chromium) ended at once (exit status 1)")
    assert message.endswith(f"open {URL} in a browser.")
    assert "Opened" not in message
    if os.geteuid() == 0:
        assert "browsers often refuse to run as root" in message


def test_a_browser_that_stays_is_reported_open(tmp_path):
    program = fake_browser(tmp_path / "bin", "sleep 60")
    message, state = open_in_browser(browser_env(tmp_path / "bin", str(program)))
    pid = int(state.rsplit("=", 1)[1]) if state.rsplit("=", 1)[1] != "None" else None
    try:
        assert state.startswith("state=open"), (message, state)
        assert message == f"Opened {URL} in the default browser (chromium)."
    finally:
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)  # it leads its own session


def test_a_browser_command_that_ends_well_handed_the_page_over(tmp_path):
    # `true` stands for a program that gives the address to a browser already running
    message, state = open_in_browser(browser_env(programs(tmp_path / "bin"), shutil.which("true")))
    assert state.startswith("state=handed-over"), (message, state)
    assert message == f"Opened {URL} in the default browser."


def test_without_any_browser_the_address_is_printed(tmp_path):
    message, state = open_in_browser(browser_env(programs(tmp_path / "bin"), None))
    assert state.startswith("state=none"), (message, state)
    assert message == f"No browser could be started; open {URL} in a browser."


@pytest.mark.slow
def test_run_whose_window_fails_says_the_browser_ended_and_prints_the_address(tmp_path):
    root, _ = make_folder(tmp_path)
    program = fake_browser(tmp_path / "bin", "sleep 0.5; exit 1")
    env = {**biosegment_env(), **browser_env(tmp_path / "bin", str(program))}
    env["QT_QPA_PLATFORM"] = "nonexistent"  # the window cannot start: Qt aborts
    log = tmp_path / "run.log"
    with open(log, "wb") as output:
        run = subprocess.Popen(
            [sys.executable, "-m", "biosegment", "--config", str(root / "biosegment.toml"), "run"],
            cwd=str(REPO),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(lambda: "in a browser." in log.read_text(), 120), log.read_text()
        text = log.read_text()
        assert "The default browser (chromium) ended at once (exit status 1)" in text, text
        assert "Opened" not in text, text
        served = next(line for line in text.splitlines() if "BioSegment serves" in line)
        address = served.rsplit(" at ", 1)[1]
        assert f"open {address} in a browser." in text, text
        assert run.poll() is None, text  # still serving
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 0, log.read_text()
