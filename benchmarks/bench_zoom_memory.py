"""Benchmark: a segmentation zoomed to a model's pixel size stays within its memory budget.

A dataset whose pixels are coarser than the model's is zoomed up before the network sees it,
so every array computed on the zoomed grid grows with the square of the zoom: a voxel size of
[50, 133, 133] gives the demo model a zoom of 10. This makes one slice of smooth random texture
(1024 x 1024 by default), prints the block plan (blocks, tile, the estimate of one block's
memory) and segments the slice with the demo model on the CPU for at most ``--seconds``: the
first region's arrays are allocated when it starts, and every region is the same size, so the
peak is reached long before the slice is finished, which would take hours on two cores. The
block is then cancelled. Peak memory is the kernel's high-water mark of resident memory
(``VmHWM``), reported with the resident memory before segmenting (Python, torch, the model).

Run from the repository root: ``.venv/bin/python benchmarks/bench_zoom_memory.py
[--size 1024] [--zoom 10] [--seconds 30] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import biosegment.engine as engine  # noqa: E402
from biosegment.engine import InferenceSettings, load_model, segment_block  # noqa: E402
from biosegment.errors import CancelledError  # noqa: E402
from biosegment.volumes import open_volume, write_volume  # noqa: E402

DEMO_MODEL = REPO / "biosegment" / "demo" / "model"


def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _texture(size: int) -> np.ndarray:
    """Smooth random grey levels: cheap to make, and the network sees some structure."""
    rng = np.random.default_rng(0)
    coarse = rng.random((size // 32 + 2, size // 32 + 2)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1.001, size)
    cols = np.linspace(0, coarse.shape[1] - 1.001, size)
    plane = coarse[rows.astype(int)][:, cols.astype(int)]
    return (plane * 255).astype(np.uint8)[np.newaxis]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="slice edge in pixels")
    parser.add_argument("--zoom", type=float, default=10.0, help="zoom to the model's pixels")
    parser.add_argument("--seconds", type=float, default=30.0, help="segment this long")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, card = load_model(DEMO_MODEL)
    settings = InferenceSettings(
        zoom=args.zoom, device="cpu", precision="fp32", normalisation=dict(card.normalisation)
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = write_volume(Path(scratch) / "slice.tif", _texture(args.size))
        with open_volume(path) as volume:
            figures: dict = {"size": args.size, "zoom": args.zoom}
            figures["blocks"] = len(engine.block_plan(volume, model, settings))
            estimate = getattr(engine, "block_memory", None)  # absent before the budget
            if estimate is not None:
                memory = estimate(volume, model, settings)
                figures["estimate_mib"] = round(memory.total / 2**20)
            figures["before_mib"] = round(_status_mib("VmRSS"))
            deadline = time.monotonic() + args.seconds
            started = time.monotonic()
            try:
                segment_block(
                    volume,
                    model,
                    0,
                    1,
                    settings=settings,
                    should_cancel=lambda: time.monotonic() > deadline,
                )
                figures["finished"] = True
            except CancelledError:
                figures["finished"] = False
            figures["seconds"] = round(time.monotonic() - started, 1)
            figures["peak_mib"] = round(_status_mib("VmHWM"))
    print(json.dumps(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
