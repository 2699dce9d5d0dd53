"""The command-line steps of docs/getting-started.md, run exactly as written, succeed.

The test reads the ``console`` block of the page's "The same from the command line" section and
runs each line with the real ``biosegment`` command (``python -m biosegment``) in an empty
folder, with a home folder and config folder of its own, so no config of the machine running
the tests leaks in. Every step must exit 0, and afterwards every file the page says the steps
made must exist. Edit the page and this test runs the new steps.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting-started.md"
SECTION = "The same from the command line"

pytestmark = pytest.mark.slow


def section_text() -> str:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(SECTION)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{PAGE.name} has no section '{SECTION}'"
    return match.group(1)


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", section_text(), re.M | re.S)


def documented_steps() -> list[str]:
    (console,) = blocks("console")
    return [line.strip() for line in console.splitlines() if line.strip()]


def documented_results() -> list[str]:
    (listing,) = blocks("text")
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def option_values(step: str) -> dict[str, str]:
    words = shlex.split(step)
    return {word: words[i + 1] for i, word in enumerate(words[:-1]) if word.startswith("--")}


def isolated_environment(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BIOSEGMENT_") and k not in ("ROOT_DATA_FOLDER",)
    }
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        APPDATA=str(home / "AppData" / "Roaming"),
        PYTHONUNBUFFERED="1",
    )
    return env


def test_the_page_has_steps_to_run():
    steps = documented_steps()
    assert steps[0].startswith("biosegment init") and "--demo" in steps[0]
    assert any(" segment " in s and "--wait" in s for s in steps)
    assert any(" train " in s and "--base-model" in s and "--wait" in s for s in steps)
    assert all(s.startswith("biosegment ") for s in steps)
    assert documented_results()


def test_the_documented_steps_run_as_written(tmp_path):
    workdir = tmp_path / "work"
    home = tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    env = isolated_environment(home)
    outputs = []
    for step in documented_steps():
        argv = [sys.executable, "-m", "biosegment", *shlex.split(step)[1:]]
        result = subprocess.run(
            argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
        )
        outputs.append(f"$ {step}\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, "\n".join(outputs)
    for location in documented_results():
        assert (workdir / location).exists(), (
            f"{location} is missing after the steps\n" + "\n".join(outputs)
        )

    # What the steps claim to have done: every model a step fine-tuned names its base model as
    # its parent, and every job succeeded.
    listing = subprocess.run(
        [sys.executable, "-m", "biosegment", "--data", "data", "models", "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    models = {m["name"]: m for m in json.loads(listing.stdout)}
    fine_tunes = [
        option_values(step)
        for step in documented_steps()
        if " train " in step and "--base-model" in step
    ]
    assert fine_tunes
    for options in fine_tunes:
        tuned = models[options["--name"]]
        assert options["--base-model"] in (tuned.get("parent") or ""), tuned
    jobs = subprocess.run(
        [sys.executable, "-m", "biosegment", "--data", "data", "jobs", "--json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    states = [job["state"] for job in json.loads(jobs.stdout)]
    assert states and set(states) == {"succeeded"}, states
