"""Score membrane models on the held-out parts of both training sources.

For each model (default: the shipped general model and the old ISBI-only demo model kept in
``benchmarks/models/isbi_only/``), segments with the product's own inference (the model
card's normalisation, measured on the part being segmented) and prints:

- ISBI 2012 slices 25-29 (ssTEM): pixel error, membrane Dice, adapted Rand error;
- NeuroProof training_sample2 z 200-249 (FIB-SEM): pixel error, membrane Dice (against the
  published ``membranes.tif``);
- inference time per megavoxel on both parts, and the load average (the CPU is shared).

Neither part was used to train or select any of these models.

    python benchmarks/bench_models.py [--json out.json] [--write-card]

``--write-card`` stores the first model's scores in its ``model.json`` (``training.evaluation``),
which the shipped-model tests read their thresholds beside.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isbi_training import (  # noqa: E402  (helpers beside this script)
    TEST_SLICES,
    default_isbi_folder,
    isbi_labels,
    machine_note,
)
from membrane_data import default_neuroproof_folder, neuroproof_test_part  # noqa: E402

from biosegment.engine.checkpoint import load_model, save_model  # noqa: E402
from biosegment.engine.inference import segment_volume  # noqa: E402
from biosegment.engine.metrics import segmentation_scores  # noqa: E402
from biosegment.volumes import open_volume, write_volume  # noqa: E402

__all__ = ["main", "score_model", "SHIPPED_MODEL", "ISBI_ONLY_MODEL"]

HERE = Path(__file__).resolve().parent
SHIPPED_MODEL = HERE.parent / "biosegment" / "demo" / "model"
ISBI_ONLY_MODEL = HERE / "models" / "isbi_only"


def _segment(path: Path, model, card) -> tuple:
    with open_volume(path) as volume:
        started = time.perf_counter()
        labels = segment_volume(volume, model, device="cpu", normalisation=card.normalisation)
        return labels, time.perf_counter() - started


def _scores(truth, labels, *, boundary: bool) -> dict:
    scores = segmentation_scores(
        truth,
        labels,
        num_classes=2,
        class_names=["background", "membrane"],
        boundary_class=1 if boundary else None,
    )
    result = {"pixel_error": scores["pixel_error"], "membrane_dice": scores["dice"]["membrane"]}
    if boundary:
        result["rand_error"] = scores["rand_error"]
    return result


def held_out_parts(isbi: Path, neuroproof: Path, scratch: Path) -> dict:
    """Both held-out parts as TIFF files the product opens, with their class ids."""
    with open_volume(isbi / "train-volume.tif") as volume:
        isbi_image = volume.read_block(TEST_SLICES.start, TEST_SLICES.stop)
    np_image, np_truth = neuroproof_test_part(neuroproof)
    return {
        "isbi": (
            write_volume(scratch / "isbi_25_29.tif", isbi_image, voxel_size=(50, 4, 4)),
            isbi_labels(isbi, TEST_SLICES),
        ),
        "neuroproof": (
            write_volume(scratch / "neuroproof_z200_249.tif", np_image, voxel_size=(10, 10, 10)),
            np_truth,
        ),
    }


def score_model(folder: Path, parts: dict) -> dict:
    """Scores of one model on both held-out parts, and its inference time per megavoxel."""
    model, card = load_model(folder)
    result = {"model": card.name or folder.name, "folder": str(folder)}
    for key, (path, truth) in parts.items():
        labels, seconds = _segment(path, model, card)
        result[key] = _scores(truth, labels, boundary=(key == "isbi"))
        result[key]["seconds_per_megavoxel"] = round(seconds / (truth.size / 1e6), 3)
    return result


def _table(results: list[dict]) -> str:
    lines = [
        "| model | ISBI 25-29 pixel error | ISBI membrane Dice | ISBI adapted Rand error "
        "| NeuroProof z200-249 pixel error | NeuroProof membrane Dice "
        "| s/Mvoxel ISBI | s/Mvoxel NeuroProof |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        i, n = r["isbi"], r["neuroproof"]
        lines.append(
            f"| {r['model']} | {i['pixel_error']:.4f} | {i['membrane_dice']:.4f} | "
            f"{i['rand_error']:.4f} | {n['pixel_error']:.4f} | "
            f"{n['membrane_dice']:.4f} | {i['seconds_per_megavoxel']:.2f} | "
            f"{n['seconds_per_megavoxel']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models",
        nargs="*",
        type=Path,
        default=[SHIPPED_MODEL, ISBI_ONLY_MODEL],
        help="model folders (default: the shipped model and the ISBI-only one)",
    )
    parser.add_argument("--isbi", type=Path, default=default_isbi_folder())
    parser.add_argument("--neuroproof", type=Path, default=default_neuroproof_folder())
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--write-card", action="store_true", help="store the first model's scores in its model.json"
    )
    args = parser.parse_args(argv)
    for needed in (args.isbi / "train-volume.tif", args.neuroproof / "image.tif"):
        if not needed.is_file():
            print(f"held-out data not found: {needed}", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_models_") as scratch:
        parts = held_out_parts(args.isbi, args.neuroproof, Path(scratch))
        results = [score_model(folder, parts) for folder in args.models]
    machine = machine_note()
    print(_table(results))
    print(
        f"load average {machine['load_average_1_5_15']} on {os.cpu_count()} cores, "
        f"{machine['torch_threads']} torch threads; the machine was shared"
    )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "machine": machine}, indent=2))
    if args.write_card:
        model, card = load_model(args.models[0])
        first = results[0]
        card.training["evaluation"] = {
            "isbi_2012_slices_25_29": first["isbi"],
            "neuroproof_z200_249": first["neuroproof"],
            "command": "python benchmarks/bench_models.py --write-card",
            "machine": machine,
        }
        save_model(model, card, args.models[0])
        print(f"scores written to {args.models[0] / 'model.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
