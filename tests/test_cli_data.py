"""The data-folder commands end to end, through the real `biosegment` executable and CliRunner."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from biosegment.cli import main

REPO = Path(__file__).resolve().parents[1]


def biosegment(
    *args: str, cwd: Path | None = None, env_extra: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BIOSEGMENT_CONFIG", "BIOSEGMENT_DATA", "ROOT_DATA_FOLDER")
    }
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-m", "biosegment", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"biosegment {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_init_demo_then_datasets_json_lists_the_demo_dataset(tmp_path):
    root = tmp_path / "x"
    biosegment("init", str(root), "--demo")
    assert (root / "setup.json").is_file()
    for folder in ("EM", "models", "segmentations", "annotations", ".biosegment"):
        assert (root / folder).is_dir()
    proc = biosegment("--config", str(root / "biosegment.toml"), "datasets", "--json", cwd=tmp_path)
    rows = json.loads(proc.stdout)
    demo = next(r for r in rows if r["name"] == "isbi2012-demo")
    assert demo["shape"] == [5, 512, 512]
    assert demo["dtype"] == "uint8"
    assert demo["ground_truth"]
    assert demo["state"] == "ok"


def test_init_never_overwrites_an_existing_setup_json(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    original = '{"EM_location": "EM", "projects": [{"title": "Mine"}]}\n'
    (root / "setup.json").write_text(original)
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert (root / "setup.json").read_text() == original


def test_init_is_repeatable(tmp_path):
    root = tmp_path / "d"
    for _ in range(2):
        result = CliRunner().invoke(main, ["init", str(root), "--demo", "--json"])
        assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["created"] == []


def test_info_on_the_isbi_stack_is_fast_and_exact(isbi_dir):
    start = time.perf_counter()
    proc = biosegment("info", str(isbi_dir / "train-volume.tif"), "--json")
    elapsed = time.perf_counter() - start
    document = json.loads(proc.stdout)
    assert document["shape"] == [30, 512, 512]
    assert document["dtype"] == "uint8"
    assert document["file_type"] == "tif3d"
    # The whole process, interpreter start included; the probe itself is milliseconds.
    assert elapsed < 10, elapsed


def test_info_on_a_2gb_sparse_tiff_reads_no_pixels(tmp_path):
    path = tmp_path / "huge.tif"
    shape = (2048, 1024, 1024)  # 2 GiB of uint8
    stack = tifffile.memmap(path, shape=shape, dtype=np.uint8)
    stack[0, 0, :4] = [1, 2, 3, 4]
    stack.flush()
    del stack
    assert path.stat().st_size >= 2 * 1024**3
    if path.stat().st_blocks * 512 > 256 * 1024**2:
        pytest.skip("this file system does not create sparse files")
    # A fresh parent process runs the command, so its children's peak RSS is this command's alone.
    probe = (
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'biosegment', 'info', sys.argv[1], '--json'],"
        " capture_output=True, text=True)\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr,"
        " 'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("BIOSEGMENT_CONFIG", "BIOSEGMENT_DATA")}
    run = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    measured = json.loads(run.stdout)
    assert measured["rc"] == 0, measured["err"]
    document = json.loads(measured["out"])
    assert document["shape"] == list(shape)
    # Reading 2 GiB of pixels would touch 2 GiB of memory; the command's peak RSS stays far
    # below that (interpreter and numpy included).
    assert measured["peak_kib"] < 400 * 1024, measured["peak_kib"]


def test_status_reports_an_invalid_setup_json_with_line_and_column(tmp_path):
    root = tmp_path / "d"
    biosegment("init", str(root), "--demo")
    (root / "setup.json").write_text('{"EM_location": "EM",\n  "datasets": [,]\n}\n')
    proc = biosegment("--data", str(root), "status", "--json", check=False)
    assert proc.returncode == 1, proc.stderr  # problems listed: a script sees it
    document = json.loads(proc.stdout)
    assert any(
        "setup.json" in (p.get("source") or "")
        and "line 2" in f"{p.get('where')} {p.get('reason')}"
        for p in document["problems"]
    ), document["problems"]
    # The last good state is kept: the demo dataset is still listed.
    rows = json.loads(biosegment("--data", str(root), "datasets", "--json").stdout)
    assert [r["name"] for r in rows] == ["isbi2012-demo"]


def test_a_bad_config_is_a_one_line_error(tmp_path):
    config = tmp_path / "biosegment.toml"
    config.write_text('data_dir = "d"\n[server]\nport = "eighty"\n')
    proc = biosegment("--config", str(config), "status", check=False)
    assert proc.returncode == 2  # status: nothing could be checked, not "problems found"
    assert "server.port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_data_folder_says_how_to_create_it(tmp_path):
    proc = biosegment("--data", str(tmp_path / "nowhere"), "datasets", check=False)
    assert proc.returncode == 1
    assert "biosegment init" in proc.stderr


def test_unknown_dataset_is_a_clear_error(tmp_path):
    root = tmp_path / "d"
    biosegment("init", str(root))
    proc = biosegment("--data", str(root), "info", "no-such-dataset", check=False)
    assert proc.returncode == 1
    assert "no-such-dataset" in proc.stderr


def test_reindex_after_deleting_the_catalog_restores_the_demo(tmp_path):
    root = tmp_path / "d"
    biosegment("init", str(root), "--demo")
    before = json.loads(biosegment("--data", str(root), "datasets", "--json").stdout)
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (root / ".biosegment" / name).unlink(missing_ok=True)
    biosegment("--data", str(root), "reindex")
    after = json.loads(biosegment("--data", str(root), "datasets", "--json").stdout)
    assert [(d["name"], d["shape"], d["dtype"]) for d in after] == [
        (d["name"], d["shape"], d["dtype"]) for d in before
    ]


def test_python_dash_m_matches_the_console_script():
    proc = biosegment("--version")
    assert "0.1.0" in proc.stdout


def _printed(lines: str, prefix: str) -> str:
    [line] = [line for line in lines.splitlines() if line.startswith(prefix)]
    return line[len(prefix) :].strip()


def _as_typed(command: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a command line init printed, in ``cwd``, as a person would type it (the printed
    ``run`` becomes ``status``: same options, and it ends)."""
    words = shlex.split(command)
    assert words[0] == "biosegment" and words[-1] == "run", command
    return biosegment(*words[1:-1], "status", cwd=cwd, env_extra=env, check=False)


def test_init_prints_the_command_that_serves_the_new_folder_from_here(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "user-config")}  # no user config file
    here = tmp_path / "lab"
    here.mkdir()
    made = biosegment("init", "data", cwd=here, env_extra=env)
    root = (here / "data").resolve()
    command = _printed(made.stdout, "Start BioSegment on it:")
    assert command == "biosegment --data data run"
    status = _as_typed(command, here, env)
    assert status.returncode == 0, status.stderr
    assert f"Data folder: {root}" in status.stdout

    note = _printed(made.stdout, "Config file:")
    assert note.startswith("data/biosegment.toml, read with `biosegment --config data/biosegment")
    assert "commands run here read the built-in defaults" in note
    # what the note says: the folder's file is read when named, and from inside the folder
    named = biosegment("--config", "data/biosegment.toml", "status", cwd=here, env_extra=env)
    inside = biosegment("status", cwd=root, env_extra=env)
    for shown in (named, inside):
        assert f"Data folder: {root}" in shown.stdout
        assert f"Config:      {root / 'biosegment.toml'}" in shown.stdout


def test_init_says_a_plain_command_works_when_the_config_here_names_the_folder(tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "user-config")}
    here = tmp_path / "lab"
    here.mkdir()
    (here / "biosegment.toml").write_text('data_dir = "lab data"\n', encoding="utf-8")
    made = biosegment("init", cwd=here, env_extra=env)
    command = _printed(made.stdout, "Start BioSegment on it:")
    assert command == "biosegment run"
    status = _as_typed(command, here, env)
    assert status.returncode == 0, status.stderr
    assert f"Data folder: {(here / 'lab data').resolve()}" in status.stdout
    note = _printed(made.stdout, "Config file:")
    assert note.startswith("'lab data/biosegment.toml', read with")
    assert note.endswith("commands run here read biosegment.toml")

    # a folder elsewhere, named on the command line: the printed command names it, quoted
    other = tmp_path / "elsewhere" / "new folder"
    made = biosegment("init", str(other), cwd=here, env_extra=env)
    command = _printed(made.stdout, "Start BioSegment on it:")
    assert command == f"biosegment --data {shlex.quote(str(other.resolve()))} run"
    status = _as_typed(command, here, env)
    assert status.returncode == 0 and f"Data folder: {other.resolve()}" in status.stdout
