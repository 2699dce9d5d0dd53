"""The red-team replay script starts, lists its probes, refuses unknown ones and non-loopback
addresses, and makes the TIFF it claims to make. The replay itself is a benchmark (minutes of
abuse against a real server), run by hand: ``python benchmarks/bench_redteam.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tifffile

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_redteam.py"

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_redteam  # noqa: E402

_PROBES = [probe.name for probe in bench_redteam.PROBES]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_help_names_every_probe():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert "--probes" in result.stdout and "--quick" in result.stdout
    for name in _PROBES:
        assert name in result.stdout


def test_unknown_probe_and_remote_address_are_refused_before_anything_starts():
    unknown = _run("--probes", "tiff_bomb,no_such_probe")
    assert unknown.returncode == 2 and "no_such_probe" in unknown.stderr
    remote = _run("--probes", "login_throttle", "--accounts-host", "192.168.1.10")
    assert remote.returncode != 0 and "not a loopback address" in remote.stderr


def test_the_tiff_bomb_is_one_small_strip_claiming_30000_squared(tmp_path):
    path = bench_redteam.Inputs(tmp_path).tiff_bomb()
    assert path.stat().st_size < 2 * 2**20
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.shape == (30000, 30000)
        assert len(page.dataoffsets) == 1 and page.compression == 8  # one zlib strip
