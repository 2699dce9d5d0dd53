"""Benchmark: how fast the viewer's tiles are served, slice by slice, over real HTTP.

Builds a data folder with a 1024x1024x100 uint8 volume (an uncompressed multi-page TIFF, as
microscopes write them) and a 0/255 segmentation of it, serves it with the web UI's waitress
server on 127.0.0.1, and times 512x512 PNG tiles the way the viewer asks for them: every tile of
a slice the first time it is shown (the slice is read from disk), the same tiles again (served
from the decoded slice), a label overlay, the zoomed-out level, and the orthogonal XZ view; then
the same for one 8192x8192 slice, the size the tile pyramid exists for. The target is a p95
under 50 ms per tile. Prints a table; ``--json`` writes the figures too.

    python benchmarks/bench_viewer.py
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.config import ServerConfig, load_config
from biosegment.datafolder import init_data_folder
from biosegment.webui.server import create_server

__all__ = ["main", "build_folder", "time_requests"]

SHAPE = (100, 1024, 1024)
WIDE_SHAPE = (2, 8192, 8192)
TARGET_P95_MS = 50.0


def build_folder(root: Path, shape=SHAPE) -> None:
    """A data folder with one synthetic EM-like volume and a binary segmentation of it."""
    init_data_folder(root)
    rng = np.random.default_rng(0)
    z, y, x = shape
    yy, xx = np.mgrid[0:y, 0:x]
    (root / "EM" / "bench" / "raw").mkdir(parents=True)
    labels = np.zeros(shape, np.uint8)
    with tifffile.TiffWriter(root / "EM" / "bench" / "raw" / "bench.tif") as writer:
        for k in range(z):
            # cell-like texture: smooth waves plus noise, so PNG has real work to do
            plane = (
                128 + 60 * np.sin(xx / (17 + k % 5)) * np.cos(yy / 23) + rng.normal(0, 20, (y, x))
            )
            writer.write(
                np.clip(plane, 0, 255).astype(np.uint8), photometric="minisblack", contiguous=True
            )
            labels[k] = np.where(np.sin(xx / 17) * np.cos(yy / 23) > 0.6, 255, 0)
    segmentation = root / "segmentations" / "bench" / "waves"
    segmentation.mkdir(parents=True)
    tifffile.imwrite(segmentation / "labels.tif", labels, photometric="minisblack")
    (root / "EM" / "wide").mkdir()
    with tifffile.TiffWriter(root / "EM" / "wide" / "wide.tif") as writer:
        for _ in range(WIDE_SHAPE[0]):
            plane = rng.integers(0, 256, WIDE_SHAPE[1:], dtype=np.uint8)
            writer.write(plane, photometric="minisblack", contiguous=True)
    with open_catalog(root) as catalog:
        refresh(catalog, root)


def time_requests(host: str, port: int, paths: list[str]) -> list[float]:
    """Milliseconds per request, one keep-alive connection, each body read completely."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    times = []
    for path in paths:
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or not body.startswith(b"\x89PNG"):
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        times.append(elapsed)
    connection.close()
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "n": len(times),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(ordered[-1], 2),
    }


def tile_paths(
    kind: str, axis: str, index: int, level: int, tiles: int, name: str = "", dataset: str = "bench"
) -> list:
    query = f"?name={name}" if name else ""
    return [
        f"/api/v1/datasets/{dataset}/tiles/{kind}/{axis}/{index}/{level}/{r}/{c}.png{query}"
        for r in range(tiles)
        for c in range(tiles)
    ]


def run(root: Path) -> dict:
    config = load_config(data_dir=root, env={}, cwd=root)
    config = dataclasses.replace(config, server=ServerConfig(host="127.0.0.1", port=0))
    server = create_server(config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = "127.0.0.1", server.port
    nz = SHAPE[0]
    try:
        cold = []
        for z in range(nz):  # first view of each slice: read from disk, then 4 tiles
            cold += time_requests(host, port, tile_paths("raw", "z", z, 0, 2))
        warm = []
        for z in range(0, nz, 5):
            warm += time_requests(host, port, tile_paths("raw", "z", z, 0, 2))
        overlay = []
        for z in range(0, nz, 2):
            overlay += time_requests(
                host, port, tile_paths("segmentation", "z", z, 0, 2, name="waves")
            )
        zoomed_out = time_requests(
            host, port, [p for z in range(nz) for p in tile_paths("raw", "z", z, 1, 1)]
        )
        xz = time_requests(
            host,
            port,
            [
                p
                for y in range(0, 1024, 16)
                for p in tile_paths("raw", "y", y, 0, 1) + tile_paths("raw", "y", y, 0, 2)[1:2]
            ],
        )
        # 8k x 8k: the overview first (the whole slice in one tile), then a screenful at full
        # resolution, then the next slice the same way
        wide_first, wide_tiles = [], []
        for z in range(WIDE_SHAPE[0]):
            wide_first += time_requests(host, port, tile_paths("raw", "z", z, 4, 1, dataset="wide"))
            wide_tiles += time_requests(host, port, tile_paths("raw", "z", z, 0, 4, dataset="wide"))
            wide_tiles += time_requests(host, port, tile_paths("raw", "z", z, 2, 4, dataset="wide"))
    finally:
        server.close()
        thread.join(10)
    return {
        "raw tiles, first view of each slice": summary(cold),
        "raw tiles, slice seen before": summary(warm),
        "segmentation overlay tiles": summary(overlay),
        "zoomed out (level 1, whole slice)": summary(zoomed_out),
        "XZ view tiles (y planes)": summary(xz),
        "8k slice: overview tile, first look": summary(wide_first),
        "8k slice: tiles at levels 0 and 2": summary(wide_tiles),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", type=Path, help="build the data folder here and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch) / "data"
        started = time.perf_counter()
        build_folder(root)
        print(
            f"volumes {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} and {WIDE_SHAPE[2]}x{WIDE_SHAPE[1]}x"
            f"{WIDE_SHAPE[0]} uint8 built in "
            f"{time.perf_counter() - started:.1f} s"
        )
        figures = run(root)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{'512x512 PNG tiles over HTTP':40s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} "
        f"{'max ms':>8s}"
    )
    for label, row in figures.items():
        print(
            f"{label:40s} {row['n']:5d} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} "
            f"{row['max_ms']:8.1f}"
        )
    worst = max(row["p95_ms"] for row in figures.values())
    verdict = "meets" if worst < TARGET_P95_MS else "MISSES"
    print(
        f"worst p95 {worst:.1f} ms: {verdict} the {TARGET_P95_MS:.0f} ms target "
        f"({os.cpu_count()} CPUs, load average {load:.2f}, {platform.python_version()})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"shape": SHAPE, "figures": figures, "load_average": load}, indent=2),
            encoding="utf-8",
        )
    return 0 if worst < TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())
