"""Benchmark: a 20 GB OME-Zarr volume in the viewer (tile latency) and in segmentation (memory).

Builds a data folder whose ``EM/big.ome.zarr`` is an OME-Zarr 0.5 image of 1280 x 4096 x 4096
uint8 voxels (20 GiB, chunks of 1 x 512 x 512, a four-level pyramid made of 2x2 means).
It is sparse: slices 0-31 are filled with ISBI 2012 texture and every 64th slice after that
holds one 1024 x 1024 patch; every other chunk was never written and reads as zeros. So the
store takes well under a gigabyte of disk while every read still goes through the 20 GB
array's chunk grid.

Then it

1. serves the folder with the web UI's waitress server on 127.0.0.1 and times 512 x 512 PNG
   tiles over real HTTP the way a person browses: the overview of random slices, zooming in
   (levels 2, 1, 0) on filled and on empty slices, and scrolling through 24 consecutive slices;
2. times the same tile boxes read through the reader contract's pyramid
   (``reader.level(i).read_block``), which is what a pyramid-aware viewer costs;
3. segments slices 0-15 (268 M voxels) with a small random U-Net (2-D, 4 feature maps,
   2 levels) through ``segment_volume`` with a label TIFF as output, in a fresh process, and
   reports its peak resident memory (``ru_maxrss``). Segmenting all 1280 slices would take
   hours on 2 CPU cores; memory does not grow with the number of slices (blocks are streamed),
   so 16 slices (one block) show the peak.

Targets: tile p95 under 50 ms; peak RSS under 1.5 GB.

    python benchmarks/bench_zarr.py [--folder DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_folder", "SHAPE"]

SHAPE = (1280, 4096, 4096)
CHUNKS = (1, 512, 512)
FILLED_SLICES = 32
PATCH_EVERY = 64
TARGET_P95_MS = 50.0
TARGET_RSS_GB = 1.5
REPO = Path(__file__).resolve().parents[1]
ISBI = REPO.parent / "shared" / "data" / "isbi2012" / "train-volume.tif"
DEMO = REPO / "biosegment" / "demo" / "isbi2012" / "raw.tif"


def _texture() -> np.ndarray:
    import tifffile

    return tifffile.imread(ISBI if ISBI.is_file() else DEMO)


def _halve(block: np.ndarray) -> np.ndarray:
    block = block.astype(np.float32)
    return np.rint(
        (block[:, 0::2, 0::2] + block[:, 1::2, 0::2] + block[:, 0::2, 1::2] + block[:, 1::2, 1::2])
        / 4
    ).astype(np.uint8)


def build_folder(root: Path) -> Path:
    """The data folder with the sparse 20 GiB OME-Zarr image; returns the store's path."""
    import zarr

    from biosegment.catalog import open_catalog, refresh
    from biosegment.datafolder import init_data_folder
    from biosegment.volumes.ome_ngff import multiscale_attributes

    init_data_folder(root)
    store = root / "EM" / "big.ome.zarr"
    if (store / "zarr.json").is_file():
        return store
    texture = _texture()
    group = zarr.open_group(str(store), mode="w", zarr_format=3)
    arrays = []
    for level in range(4):
        step = 2**level
        shape = (SHAPE[0], SHAPE[1] // step, SHAPE[2] // step)
        arrays.append(
            group.create_array(
                str(level),
                shape=shape,
                dtype="uint8",
                chunks=CHUNKS,
                fill_value=0,
                dimension_names=["z", "y", "x"],
            )
        )

    def write(z0: int, y0: int, x0: int, block: np.ndarray) -> None:
        for level, array in enumerate(arrays):
            step = 2**level
            array[
                z0 : z0 + block.shape[0],
                y0 // step : y0 // step + block.shape[1],
                x0 // step : x0 // step + block.shape[2],
            ] = block
            if level < len(arrays) - 1:
                block = _halve(block)

    for z in range(FILLED_SLICES):
        plane = np.tile(texture[z % len(texture)], (8, 8))
        write(z, 0, 0, plane[np.newaxis])
    for index, z in enumerate(range(FILLED_SLICES + PATCH_EVERY, SHAPE[0], PATCH_EVERY)):
        patch = np.tile(texture[index % len(texture)], (2, 2))
        y0 = x0 = 1024 * (index % 3)
        write(z, y0, x0, patch[np.newaxis])
    group.attrs.update(
        multiscale_attributes(
            "0.5",
            level_paths=["0", "1", "2", "3"],
            level_factors=[(1.0, 2.0**i, 2.0**i) for i in range(4)],
            voxel_size=(30.0, 4.0, 4.0),
            name="big",
            downsampling="mean",
        )
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return store


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# -- tiles over HTTP ---------------------------------------------------------------------------


def _serve(root: Path):
    from biosegment.config import ServerConfig, load_config
    from biosegment.webui.server import create_server

    config = load_config(data_dir=root, env={}, cwd=root)
    config = dataclasses.replace(config, server=ServerConfig(host="127.0.0.1", port=0))
    server = create_server(config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def _tile_paths(rng: random.Random) -> dict[str, list[str]]:
    """Tile URLs by browsing step; level L has (4096 / 512 / 2**L)**2 tiles per slice."""
    base = "/api/v1/datasets/big/tiles/raw/z"
    filled = list(range(FILLED_SLICES))
    patched = list(range(FILLED_SLICES + PATCH_EVERY, SHAPE[0], PATCH_EVERY))
    empty = [z for z in range(FILLED_SLICES, SHAPE[0]) if z % PATCH_EVERY]
    steps: dict[str, list[str]] = {
        "overview (level 3), first look at a slice": [
            f"{base}/{z}/3/0/0.png"
            for z in rng.sample(filled, 12) + rng.sample(patched, 8) + rng.sample(empty, 20)
        ]
    }
    for level, label in (
        (2, "level 2 (2x2 tiles)"),
        (1, "level 1 (viewport 2x2)"),
        (0, "level 0 (viewport 2x2)"),
    ):
        tiles_per_side = 4096 // 512 // 2**level
        paths = []
        for z in rng.sample(filled, 6) + rng.sample(patched, 4) + rng.sample(empty, 6):
            row = rng.randrange(max(1, tiles_per_side - 1))
            col = rng.randrange(max(1, tiles_per_side - 1))
            paths += [
                f"{base}/{z}/{level}/{row + dr}/{col + dc}.png"
                for dr in (0, 1)
                for dc in (0, 1)
                if row + dr < tiles_per_side and col + dc < tiles_per_side
            ]
        steps[f"zoom in: {label}"] = paths
    start = rng.randrange(FILLED_SLICES - 24)
    steps["scroll 24 slices at level 2"] = [
        f"{base}/{z}/2/{r}/{c}.png"
        for z in range(start, start + 24)
        for r in (0, 1)
        for c in (0, 1)
    ]
    return steps


def time_tiles(url: str, steps: dict[str, list[str]]) -> dict[str, list[float]]:
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    timings: dict[str, list[float]] = {}
    for step, paths in steps.items():
        for path in paths:
            started = time.perf_counter()
            connection.request("GET", path)
            reply = connection.getresponse()
            body = reply.read()
            elapsed = (time.perf_counter() - started) * 1000
            if reply.status != 200 or not body.startswith(b"\x89PNG"):
                raise RuntimeError(f"{path}: HTTP {reply.status}: {body[:200]!r}")
            timings.setdefault(step, []).append(elapsed)
    connection.close()
    return timings


def time_reader_tiles(store: Path, steps: dict[str, list[str]]) -> dict[str, list[float]]:
    """The same tile boxes read from the pyramid level they show, through the contract."""
    from biosegment.volumes import open_volume

    timings: dict[str, list[float]] = {}
    with open_volume(store) as reader:
        for step, paths in steps.items():
            for path in paths:
                z, level, row, col = (int(p) for p in path.removesuffix(".png").split("/")[-4:])
                started = time.perf_counter()
                tile = reader.level(level).read_block(
                    z, z + 1, slice(row * 512, row * 512 + 512), slice(col * 512, col * 512 + 512)
                )
                timings.setdefault(step, []).append((time.perf_counter() - started) * 1000)
                assert tile.shape[1:] == (512, 512)
    return timings


def _summary(timings: dict[str, list[float]]) -> list[dict]:
    rows = []
    everything = [t for values in timings.values() for t in values]
    for step, values in [*timings.items(), ("all tiles", everything)]:
        ordered = sorted(values)
        rows.append(
            {
                "step": step,
                "n": len(values),
                "p50_ms": round(statistics.median(ordered), 1),
                "p95_ms": round(ordered[max(0, int(round(0.95 * len(ordered))) - 1)], 1),
                "max_ms": round(ordered[-1], 1),
            }
        )
    return rows


# -- segmentation memory -----------------------------------------------------------------------


def segment_range(store: Path, out: Path, slices: int) -> dict:
    """Segment slices 0..slices-1 of the store with a small net; report time and peak RSS."""
    import torch

    from biosegment.engine import UNet
    from biosegment.engine.inference import segment_volume
    from biosegment.volumes import VolumeReader, open_volume

    class FirstSlices(VolumeReader):
        """The first ``slices`` slices of a volume (a z-range of the 20 GB image)."""

        def __init__(self, base: VolumeReader, depth: int):
            self._base = base
            self._info = dataclasses.replace(base.info, shape=(depth, *base.shape[1:]))

        @property
        def info(self):
            return self._info

        @property
        def chunks(self):
            return self._base.chunks

        def read_slice(self, z: int) -> np.ndarray:
            return self._base.read_slice(z)

        def read_block(self, z0, z1, y=None, x=None):
            if not 0 <= z0 <= z1 <= self._info.shape[0]:
                raise IndexError(f"z range {z0}:{z1} outside 0:{self._info.shape[0]}")
            return self._base.read_block(z0, z1, y, x)

    torch.manual_seed(0)
    model = UNet(dims=2, feature_maps=4, levels=2, num_classes=2).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with open_volume(store) as reader:
        written = segment_volume(FirstSlices(reader, slices), model, output=out, device="cpu")
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    voxels = slices * SHAPE[1] * SHAPE[2]
    return {
        "slices": slices,
        "voxels": voxels,
        "seconds": round(seconds, 1),
        "mvoxels_per_s": round(voxels / seconds / 1e6, 2),
        "peak_rss_gb": round(peak_kb * 1024 / 1e9, 3),
        "rss_before_segmenting_gb": round(before * 1024 / 1e9, 3),
        "output": str(written),
        "output_bytes": Path(written).stat().st_size,
    }


def _segment_in_fresh_process(store: Path, slices: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-zarr-seg-") as scratch:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--segment-only",
                str(store),
                "--slices",
                str(slices),
                "--out",
                str(Path(scratch) / "labels.tif"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", type=Path, help="data folder to build in (kept); default: a temporary one"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--slices", type=int, default=16, help="slices to segment")
    parser.add_argument(
        "--skip-segmentation",
        action="store_true",
        help="time the tiles only (segmenting takes minutes on 2 cores)",
    )
    parser.add_argument("--segment-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.segment_only:
        print(json.dumps(segment_range(args.segment_only, args.out, args.slices)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-zarr-") as scratch:
        root = args.folder or Path(scratch) / "data"
        started = time.perf_counter()
        store = build_folder(root)
        built = time.perf_counter() - started
        steps = _tile_paths(random.Random(7))
        server = _serve(root)
        try:
            http_timings = time_tiles(server.url, steps)
        finally:
            server.close()
        reader_timings = time_reader_tiles(store, steps)
        segmentation = (
            None if args.skip_segmentation else _segment_in_fresh_process(store, args.slices)
        )
        logical = SHAPE[0] * SHAPE[1] * SHAPE[2]
        report = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average": [round(v, 1) for v in os.getloadavg()],
            },
            "volume": {
                "shape": list(SHAPE),
                "chunks": list(CHUNKS),
                "logical_gib": round(logical / 2**30, 2),
                "disk_mb": round(_disk_bytes(store) / 1e6, 1),
                "build_seconds": round(built, 1),
            },
            "http_tiles": _summary(http_timings),
            "reader_pyramid_tiles": _summary(reader_timings),
            "segmentation": segmentation,
        }
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    worst = report["http_tiles"][-1]["p95_ms"]
    ok = worst <= TARGET_P95_MS and (
        segmentation is None or segmentation["peak_rss_gb"] <= TARGET_RSS_GB
    )
    return 0 if ok else 1


def _print(report: dict) -> None:
    volume = report["volume"]
    print(
        f"OME-Zarr {volume['shape']} uint8, {volume['logical_gib']} GiB logical, "
        f"{volume['disk_mb']} MB on disk, built in {volume['build_seconds']} s; "
        f"load average {report['machine']['load_average']}"
    )
    for title, key in (
        ("512x512 PNG tiles over HTTP (web UI)", "http_tiles"),
        ("same tile boxes via reader.level(i) (pyramid)", "reader_pyramid_tiles"),
    ):
        print(f"\n| {title} | n | p50 ms | p95 ms | max ms |\n| --- | ---: | ---: | ---: | ---: |")
        for row in report[key]:
            print(
                f"| {row['step']} | {row['n']} | {row['p50_ms']} | {row['p95_ms']} | "
                f"{row['max_ms']} |"
            )
    seg = report["segmentation"]
    if seg is None:
        return
    print(
        f"\nsegmentation of {seg['slices']} slices ({seg['voxels'] / 1e6:.0f} M voxels): "
        f"{seg['seconds']} s, {seg['mvoxels_per_s']} M voxels/s, peak RSS "
        f"{seg['peak_rss_gb']} GB (target {TARGET_RSS_GB} GB)"
    )


if __name__ == "__main__":
    sys.exit(main())
