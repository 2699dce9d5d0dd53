"""Benchmark: segmenting a 2 GiB volume keeps peak memory bounded by the block, not the volume.

Writes a 2 GiB uint8 volume (2048 slices of 1024 x 1024 by default) to a scratch folder as a
multi-page TIFF, from a few smooth random slices shifted per z (cheap to make), then segments
it to a label TIFF with ``segment_volume``'s default settings. The 1024-pixel slices take three
windows per axis with the Gaussian blend, so block accumulators are exercised too. To keep the
run to a few minutes on two cores the network is deliberately tiny (a random fm4, 2-level
U-Net without norm): the blocks, windows and accumulators that set the peak are the same for
any network, so this limits work without changing what is measured; only the network's own
activations grow with its width. ``--full-network-slices N`` then also segments the first N
slices with the product's fm16, 4-level network and reports that peak separately.

Peak memory is reported three ways: the kernel's high-water mark of resident memory
(``VmHWM``), and the peaks of anonymous memory (our arrays and torch's buffers) and file-backed
resident pages (a memory-mapped input counts here: pages the kernel may drop at any time),
sampled every 50 ms. ``--layout uncompressed`` writes a TIFF the reader memory-maps;
the default, ``zlib``, is decoded page by page.

Run from the repository root: ``.venv/bin/python benchmarks/bench_memory.py``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosegment.engine import UNet, flops_per_voxel, segment_block, segment_volume  # noqa: E402
from biosegment.volumes import LabelVolumeWriter, open_volume  # noqa: E402


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class MemorySampler:
    """Track the peaks of anonymous and file-backed resident memory in a background thread."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_anon = max(self.peak_anon, _status_kib("RssAnon"))
            self.peak_file = max(self.peak_file, _status_kib("RssFile"))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def smooth_slices(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """A few EM-like slices: blurred noise stretched to the uint8 range."""
    rng = np.random.default_rng(seed)
    slices = []
    for _ in range(count):
        coarse = rng.random((size // 16 + 1, size // 16 + 1))
        plane = np.kron(coarse, np.ones((16, 16)))[:size, :size]
        plane += 0.3 * rng.random((size, size))
        plane = (plane - plane.min()) / (np.ptp(plane) or 1.0)
        slices.append((plane * 255).astype(np.uint8))
    return slices


def write_volume_file(path: Path, depth: int, size: int, compression: str | None) -> None:
    patterns = smooth_slices(8, size)
    with LabelVolumeWriter(path, (depth, size, size), compression=compression) as writer:
        for z in range(depth):
            writer.write_slice(z, np.roll(patterns[z % len(patterns)], z, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="volume size in GiB")
    parser.add_argument("--size", type=int, default=1024, help="slice height and width")
    parser.add_argument("--layout", choices=["zlib", "uncompressed"], default="zlib")
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--full-network-slices",
        type=int,
        default=32,
        help="then segment this many slices with the fm16/4-level network",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    depth = max(1, int(args.gib * 2**30 // (args.size * args.size)))
    scratch = Path(tempfile.mkdtemp(prefix="biosegment-mem-", dir=args.scratch))
    try:
        raw = scratch / "raw.tif"
        start = time.perf_counter()
        write_volume_file(raw, depth, args.size, None if args.layout == "uncompressed" else "zlib")
        made = time.perf_counter() - start
        torch.manual_seed(0)
        model = UNet(feature_maps=4, levels=2, norm="none", num_classes=2).eval()
        hwm_before = _status_kib("VmHWM")
        with MemorySampler() as sampler, open_volume(raw) as volume:
            start = time.perf_counter()
            segment_volume(volume, model, output=scratch / "labels.tif")
            seconds = time.perf_counter() - start
        with open_volume(scratch / "labels.tif") as labels:
            assert labels.shape == (depth, args.size, args.size)
        full = {}
        if args.full_network_slices > 0:
            # The product's network on the first slices: its wider activations, same streaming.
            count = min(depth, args.full_network_slices)
            network = UNet().eval()
            with MemorySampler() as full_sampler, open_volume(raw) as volume:
                start = time.perf_counter()
                segment_block(volume, network, 0, count)
                full = {
                    "slices": count,
                    "seconds": time.perf_counter() - start,
                    "peak_anon_mib": full_sampler.peak_anon / 1024,
                    "peak_file_backed_mib": full_sampler.peak_file / 1024,
                }
        figures = {
            "shape": [depth, args.size, args.size],
            "volume_gib": depth * args.size**2 / 2**30,
            "layout": args.layout,
            "raw_file_bytes": raw.stat().st_size,
            "network": model.config,
            "flops_per_voxel": flops_per_voxel(model.config),
            "generate_seconds": made,
            "segment_seconds": seconds,
            "voxels_per_second": depth * args.size**2 / seconds,
            "peak_rss_mib": _status_kib("VmHWM") / 1024,
            "peak_rss_before_segmenting_mib": hwm_before / 1024,
            "peak_anon_mib": sampler.peak_anon / 1024,
            "peak_file_backed_mib": sampler.peak_file / 1024,
            "full_network": full,
            "load_average": os.getloadavg(),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        "BioSegment streaming-memory benchmark (CPU; other processes may have shared the machine)"
    )
    print(
        f"volume {figures['shape']} uint8 = {figures['volume_gib']:.2f} GiB ({args.layout} "
        f"TIFF, {figures['raw_file_bytes'] / 2**30:.2f} GiB on disk), made in "
        f"{made:.0f} s; network {model.config} (random weights)"
    )
    print(
        f"segmented to a label TIFF in {seconds:.0f} s "
        f"({figures['voxels_per_second'] / 1e6:.1f} M voxels/s)"
    )
    print(
        f"peak RSS (VmHWM) {figures['peak_rss_mib']:.0f} MiB (before segmenting "
        f"{figures['peak_rss_before_segmenting_mib']:.0f}); sampled peaks: anonymous "
        f"{figures['peak_anon_mib']:.0f} MiB, file-backed {figures['peak_file_backed_mib']:.0f}"
        f" MiB; load average {figures['load_average'][0]:.2f}"
    )
    if full:
        print(
            f"fm16/4-level network on the first {full['slices']} slices ({full['seconds']:.0f}"
            f" s): sampled peaks anonymous {full['peak_anon_mib']:.0f} MiB, file-backed "
            f"{full['peak_file_backed_mib']:.0f} MiB"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
