"""Train the demo model that ships in ``biosegment/demo/model/`` (ISBI 2012 membranes).

Trains a small U-Net on ISBI 2012 train slices 0-24 for a wall-clock budget, scores it on
slices 25-29 (the slices of the demo dataset, unseen in training), and writes
``model.pytorch`` (``neuralnets`` key layout) and ``model.json`` with the classes, the data
source and its citation, the command, the training time and the scores. Only those two files
are written to the demo folder; logs and resume state stay in a temporary folder.

    python benchmarks/train_demo_model.py --budget 360
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isbi_training import (  # noqa: E402  (the helper sits beside this script)
    ISBI_CLASSES,
    default_isbi_folder,
    isbi_training_pair,
    machine_note,
    score_on_test_slices,
)

from biosegment.engine.augment import AugmentConfig  # noqa: E402
from biosegment.engine.checkpoint import load_model, save_model  # noqa: E402
from biosegment.engine.train_settings import TrainingSettings  # noqa: E402
from biosegment.engine.training import TrainingData, train_model  # noqa: E402

__all__ = ["main", "DEMO_MODEL_FOLDER"]

DEMO_MODEL_FOLDER = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "model"

DATA_SOURCE = {
    "dataset": "ISBI 2012 EM segmentation challenge (ssTEM, Drosophila first instar larva "
    "ventral nerve cord, about 4 x 4 x 50 nm per voxel)",
    "training_slices": "train-volume.tif / train-labels.tif slices 0-24",
    "evaluation_slices": "train-volume.tif / train-labels.tif slices 25-29",
    "label_conversion": "ISBI label 0 (membrane) -> class 1, 255 (cell interior) -> class 0",
    "url": "http://brainiac2.mit.edu/isbi_challenge/",
    "citation": [
        "Arganda-Carreras I. et al. (2015). Crowdsourcing the creation of image segmentation "
        "algorithms for connectomics. Frontiers in Neuroanatomy 9:142.",
        "Cardona A. et al. (2010). An integrated micro- and macroarchitectural analysis of the "
        "Drosophila brain by computer-assisted serial section electron microscopy. PLoS Biology "
        "8(10):e1000502.",
    ],
}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget",
        type=float,
        default=360.0,
        help="training wall-clock budget in seconds (default 360)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="train this many steps instead of for the time budget (the same "
        "model whatever else the machine is doing)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=default_isbi_folder(),
        help="folder with train-volume.tif and train-labels.tif",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEMO_MODEL_FOLDER,
        help="model folder to write (default: biosegment/demo/model)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--feature-maps", type=int, default=8)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if not (args.data / "train-volume.tif").is_file():
        print(f"ISBI 2012 data not found in {args.data}; pass --data", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    command = "python benchmarks/train_demo_model.py " + shlex.join(argv or sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="demo_model_"))
    machine = machine_note()
    started = time.perf_counter()
    settings = TrainingSettings(
        feature_maps=args.feature_maps,
        levels=args.levels,
        norm="instance",
        minutes=None if args.steps else args.budget / 60.0,
        max_steps=args.steps,
        steps_per_epoch=100,
        crop_size=args.crop,
        batch_size=args.batch,
        learning_rate=args.lr,
        validation_fraction=0.0,
        seed=args.seed,
        device="cpu",
    )
    data = TrainingData(
        [isbi_training_pair(args.data)],
        classes=ISBI_CLASSES,
        boundary_class=1,
        name="ISBI 2012 membranes (demo)",
    )
    result = train_model(data, work, settings, augment=AugmentConfig(), resume=False)
    seconds = time.perf_counter() - started
    model, card = load_model(work)
    scores = score_on_test_slices(model, args.data)
    card.training["provenance"] = {
        "data": DATA_SOURCE,
        "command": command,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 1),
        "steps": result.steps,
        "machine": {**machine, "load_average_after": machine_note()["load_average_1_5_15"]},
    }
    card.training["evaluation"] = {"data": DATA_SOURCE["evaluation_slices"], "scores": scores}
    path = save_model(model, card, args.out)
    size_mb = path.stat().st_size / 1e6
    print(
        f"wrote {path} ({size_mb:.2f} MB) after {result.steps} steps in {seconds:.0f} s; "
        "the machine may have been shared"
    )
    print(
        "ISBI slices 25-29: "
        + ", ".join(
            f"{key} {value:.4f}" for key, value in scores.items() if isinstance(value, float)
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
