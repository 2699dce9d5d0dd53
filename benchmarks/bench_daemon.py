"""Benchmark: how quickly the daemon notices new data, and how long its start-up scan takes.

1. Close to row: a real :class:`~biosegment.daemon.Daemon` (no web UI) watches a temporary data
   folder; stacks are written into ``EM/`` one after another (a plain write and close, then an
   atomic rename-in), and a separate catalog connection polls every 2 ms for the dataset's row.
   The figure is the time from the writer's ``close()`` (or ``rename``) to the row being
   readable. Target: under 1 s. For comparison the same is measured with ``[watch] poll =
   true``, where completeness comes from a size/mtime settle window instead of close events.
2. Start-up scan: a folder with 1,000 datasets (500 multi-page TIFFs, 500 folders of 3 TIFF
   slices) is served by a fresh daemon with an empty catalog (cold), then by a second daemon
   that finds the catalog up to date (warm). The figure is the time from ``Daemon.start()`` to
   all 1,000 rows being present. Target: under 10 s.

    python benchmarks/bench_daemon.py [--json out.json] [--datasets 1000] [--files 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from biosegment.catalog import open_catalog
from biosegment.config import config_from_mapping
from biosegment.daemon import Daemon
from biosegment.datafolder import init_data_folder
from biosegment.errors import NotFoundError

__all__ = ["main", "close_to_row", "startup_scan"]

CLOSE_TARGET_S = 1.0
SCAN_TARGET_S = 10.0


def _stack_bytes(shape, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, rng.integers(0, 255, shape, dtype=np.uint8), photometric="minisblack")
    return buffer.getvalue()


def _wait_for_row(catalog, name: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if catalog.dataset(name)["state"] == "ok":
                return time.monotonic()
        except NotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"dataset {name} never registered")


def close_to_row(workdir: Path, *, files: int, poll: bool) -> dict:
    """Seconds from close (or rename) to catalog row, for ``files`` plain writes and renames."""
    root = init_data_folder(workdir / ("poll" if poll else "events"), write_config=False).root
    config = config_from_mapping(
        {"data_dir": str(root), "watch": {"poll": poll, "settle_seconds": 1.0}}
    )
    payload = _stack_bytes((16, 256, 256), seed=1)  # 1 MB, like a small stack
    writes, renames = [], []
    with Daemon(config) as daemon:
        daemon.watcher.wait_idle(60)
        catalog = open_catalog(root)
        try:
            for i in range(files):
                name = f"written{i:03d}"
                with open(root / "EM" / f"{name}.tif", "wb") as handle:
                    handle.write(payload)
                closed = time.monotonic()
                writes.append(_wait_for_row(catalog, name) - closed)
                name = f"renamed{i:03d}"
                temporary = root / "EM" / f"{name}.tif.part"
                temporary.write_bytes(payload)
                time.sleep(0.3)  # let the .part write's events pass: they must not count
                os.replace(temporary, root / "EM" / f"{name}.tif")
                renamed = time.monotonic()
                renames.append(_wait_for_row(catalog, name) - renamed)
        finally:
            catalog.close()
    return {
        "mode": "poll" if poll else "events",
        "files": files,
        "write_close": _summary(writes),
        "rename_in": _summary(renames),
    }


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(values),
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(p95, 4),
        "max_s": round(ordered[-1], 4),
    }


def _make_datasets(root: Path, count: int) -> None:
    stack = _stack_bytes((4, 64, 64), seed=2)
    plane = _stack_bytes((1, 64, 64), seed=3)
    for i in range(count):
        if i % 2 == 0:
            (root / "EM" / f"stack{i:04d}.tif").write_bytes(stack)
        else:
            folder = root / "EM" / f"slices{i:04d}" / "raw"
            folder.mkdir(parents=True)
            for z in range(3):
                (folder / f"z{z:03d}.tif").write_bytes(plane)


def _time_start(config, count: int) -> float:
    started = time.monotonic()
    daemon = Daemon(config).start()
    try:
        catalog = open_catalog(config.data_dir)
        try:
            while True:
                registered = catalog.counts()["datasets"]["ok"]
                if registered >= count and not daemon.watcher.tracker.has_work():
                    return time.monotonic() - started
                if time.monotonic() - started > 600:
                    raise TimeoutError(f"only {registered} of {count} datasets after 10 minutes")
                time.sleep(0.01)
        finally:
            catalog.close()
    finally:
        daemon.stop()


def startup_scan(workdir: Path, *, count: int) -> dict:
    root = init_data_folder(workdir / "scan", write_config=False).root
    made = time.monotonic()
    _make_datasets(root, count)
    made = time.monotonic() - made
    config = config_from_mapping({"data_dir": str(root)})
    cold = _time_start(config, count)
    warm = _time_start(config, count)
    return {
        "datasets": count,
        "files_written_s": round(made, 2),
        "cold_s": round(cold, 2),
        "warm_s": round(warm, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--datasets", type=int, default=1000, help="datasets for the scan")
    parser.add_argument("--files", type=int, default=20, help="files per latency series")
    args = parser.parse_args(argv)
    results = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": [round(v, 1) for v in os.getloadavg()],
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["latency"] = [
            close_to_row(work, files=args.files, poll=False),
            close_to_row(work, files=max(3, args.files // 4), poll=True),
        ]
        results["scan"] = startup_scan(work, count=args.datasets)
    print("Close (or rename) to catalog row, seconds")
    print(f"{'mode':<8} {'event':<12} {'n':>4} {'p50':>8} {'p95':>8} {'max':>8}")
    for series in results["latency"]:
        for event in ("write_close", "rename_in"):
            s = series[event]
            print(
                f"{series['mode']:<8} {event:<12} {s['n']:>4} {s['p50_s']:>8.3f} "
                f"{s['p95_s']:>8.3f} {s['max_s']:>8.3f}"
            )
    scan = results["scan"]
    print(
        f"Start-up scan of {scan['datasets']} datasets: cold {scan['cold_s']:.2f} s, "
        f"warm {scan['warm_s']:.2f} s (target {SCAN_TARGET_S:.0f} s)"
    )
    worst = max(
        s[e]["max_s"]
        for s in results["latency"]
        if s["mode"] == "events"
        for e in ("write_close", "rename_in")
    )
    print(f"Worst close-to-row with events: {worst:.3f} s (target {CLOSE_TARGET_S:.0f} s)")
    print(f"Load average: {results['machine']['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
