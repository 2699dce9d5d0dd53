"""Benchmark: end-to-end segmentation speed against this machine's matrix-multiply rate.

Segments the ISBI 2012 training volume (30 x 512 x 512) with the trained neuralnets U-Net
(fm16, 4 levels), end to end: open the TIFF, segment, write the label TIFF. It reports voxels
per second and the effective rate in GFLOP/s (useful convolution FLOPs per voxel, from the
layer shapes, times voxels, over wall time), and divides it by the fp32 rate of a large
``torch.matmul`` timed in the same run, before and after. It compares the default (fast)
settings with the old library's setting (256x256 windows at a step of 128, Gaussian blend,
float32) and reports their agreement. Other work on the machine lowers every figure; the
load average is printed so a reader can judge.

Run from the repository root: ``.venv/bin/python benchmarks/bench_inference.py``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosegment.engine import flops_per_voxel, load_model, segment_volume  # noqa: E402
from biosegment.engine.device import resolve_device  # noqa: E402
from biosegment.engine.inference import resolve_precision  # noqa: E402
from biosegment.volumes import open_volume  # noqa: E402

SHARED = REPO.parent / "shared"
DEFAULT_VOLUME = SHARED / "data" / "isbi2012" / "train-volume.tif"
DEFAULT_MODEL = SHARED / "fixtures" / "neuralnets" / "isbi_unet2d_fm16_l4_instance.pytorch"

# The old library's sliding window, for comparison.
NEURALNETS_STYLE = dict(
    window=(256, 256), step=(128, 128), blend="gaussian", sigma_scale=0.25, precision="fp32"
)


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 4096, repeats: int = 5) -> float:
    """Best rate of a ``size`` x ``size`` matrix product, in GFLOP/s."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b  # warm-up: threads, caches, oneDNN kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def timed_segmentation(
    volume_path: Path, model, output: Path, repeats: int, **settings
) -> tuple[list[float], np.ndarray]:
    """Wall times of ``repeats`` end-to-end runs (open, segment, write), and the labels."""
    times = []
    for _ in range(repeats):
        output.unlink(missing_ok=True)
        start = time.perf_counter()
        with open_volume(volume_path) as volume:
            segment_volume(volume, model, output=output, **settings)
        times.append(time.perf_counter() - start)
    with open_volume(output) as written:
        labels = written.read_block(0, written.shape[0])
    return times, labels


def agreement(fast: np.ndarray, reference: np.ndarray, classes: int) -> dict:
    dice = {}
    for label in range(classes):
        a, b = fast == label, reference == label
        total = a.sum() + b.sum()
        dice[label] = float(2.0 * np.logical_and(a, b).sum() / total) if total else 1.0
    return {"pixels_equal": float(np.mean(fast == reference)), "dice_per_class": dice}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", type=Path, default=DEFAULT_VOLUME)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; best counts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, _ = load_model(args.model)
    with open_volume(args.volume) as volume:
        shape = volume.shape
    voxels = int(np.prod(shape))
    flops = flops_per_voxel(model.config)
    device = resolve_device("auto")
    load_before = os.getloadavg()
    matmul_before = matmul_gflops()
    bf16_matmul = matmul_gflops(torch.bfloat16)

    results = {}
    labels = {}
    with tempfile.TemporaryDirectory() as scratch:
        settings = {
            "default (fast)": {},
            "default windows, fp32": {"precision": "fp32"},
            "neuralnets-style 256/128 Gaussian fp32": NEURALNETS_STYLE,
        }
        for name, options in settings.items():
            repeats = args.repeats if name != "neuralnets-style 256/128 Gaussian fp32" else 1
            times, labels[name] = timed_segmentation(
                args.volume, model, Path(scratch) / "labels.tif", repeats, **options
            )
            best = min(times)
            results[name] = {
                "seconds_best": best,
                "seconds_median": statistics.median(times),
                "voxels_per_second": voxels / best,
                "effective_gflops": flops * voxels / best / 1e9,
            }
    matmul_after = matmul_gflops()
    matmul = max(matmul_before, matmul_after)
    load_after = os.getloadavg()

    reference = labels["neuralnets-style 256/128 Gaussian fp32"]
    classes = model.config["num_classes"]
    for name in results:
        results[name]["ratio_to_fp32_matmul"] = results[name]["effective_gflops"] / matmul
        results[name]["agreement_with_neuralnets_style"] = agreement(
            labels[name], reference, classes
        )

    print("BioSegment inference benchmark (CPU; other processes may have shared the machine)")
    print(
        f"volume {args.volume.name} {shape}, {voxels / 1e6:.2f} M voxels; model "
        f"{model.config}; {flops / 1e3:.1f} kFLOP/voxel; device {device}, "
        f"auto precision {resolve_precision('auto', device)}, threads {args.threads}"
    )
    print(
        f"fp32 matmul: {matmul_before:.0f} GFLOP/s before, {matmul_after:.0f} after "
        f"(reference {matmul:.0f}); bf16 matmul {bf16_matmul:.0f} GFLOP/s"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    for name, figures in results.items():
        agree = figures["agreement_with_neuralnets_style"]
        dice = ", ".join(f"{k}: {v:.4f}" for k, v in agree["dice_per_class"].items())
        print(
            f"- {name}: best {figures['seconds_best']:.2f} s (median "
            f"{figures['seconds_median']:.2f}), {figures['voxels_per_second'] / 1e6:.2f} M "
            f"voxels/s, {figures['effective_gflops']:.0f} GFLOP/s effective = "
            f"{figures['ratio_to_fp32_matmul']:.0%} of fp32 matmul; vs neuralnets-style: "
            f"{agree['pixels_equal']:.2%} pixels equal, Dice {dice}"
        )
    fast = labels["default (fast)"]
    fp32 = labels["default windows, fp32"]
    print(
        f"default (fast) vs same windows in fp32: {np.mean(fast == fp32):.3%} pixels equal, "
        f"Dice {agreement(fast, fp32, classes)['dice_per_class']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "shape": shape,
                    "flops_per_voxel": flops,
                    "matmul_fp32_gflops": matmul,
                    "matmul_fp32_before_after": [matmul_before, matmul_after],
                    "matmul_bf16_gflops": bf16_matmul,
                    "load_average": [load_before, load_after],
                    "results": results,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
