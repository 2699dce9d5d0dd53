"""Train the general membrane model that ships in ``biosegment/demo/model/`` (ssTEM + FIB-SEM).

Two microscopes, two pixel sizes: ISBI 2012 ssTEM slices 0-24 (4 nm pixels) and NeuroProof
training_sample2 FIB-SEM z 0-199 (10 nm isotropic, so its XY, XZ and YZ planes all train).
ISBI slices 25-29 and NeuroProof z 200-249 are never read here: not for training, not for
choosing a model (there is no validation split; the last step is the model). See
``membrane_data.py`` for the label conversions and how NeuroProof's tiny fragments are
handled.

What makes it travel: each volume is scaled by its own 1st and 99th percentile (the card says
so, and inference measures them on the volume it segments); crops get zoom (another pixel
size), gamma, contrast and brightness, noise, blur and section artefacts (stripes, uneven
illumination, folds). The network is the demo model's size (fm8, 4 levels), so it segments
as fast as the ISBI-only model did.

    python benchmarks/train_general_model.py --steps 1200 --budget 2700

Writes ``model.pytorch`` and ``model.json`` (classes, pixel size, normalisation, data
sources with licences and attribution, the command, training time, machine) to ``--out``.
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
from isbi_training import (  # noqa: E402  (helpers beside this script)
    ISBI_CLASSES,
    TRAIN_SLICES,
    default_isbi_folder,
    isbi_labels,
    machine_note,
)
from membrane_data import (  # noqa: E402
    ISBI_SOURCE,
    NEUROPROOF_SOURCE,
    default_neuroproof_folder,
    neuroproof_training_pairs,
)

from biosegment.engine.augment import AugmentConfig  # noqa: E402
from biosegment.engine.checkpoint import load_model, save_model  # noqa: E402
from biosegment.engine.intensity import percentile_normalisation  # noqa: E402
from biosegment.engine.progress import TrainingObservers  # noqa: E402
from biosegment.engine.samples import TrainingPair  # noqa: E402
from biosegment.engine.train_settings import TrainingSettings  # noqa: E402
from biosegment.engine.training import TrainingData, train_model  # noqa: E402
from biosegment.volumes import open_volume  # noqa: E402

__all__ = ["main", "GENERAL_AUGMENT", "PIXEL_SIZE", "MODEL_NAME"]

DEMO_MODEL_FOLDER = Path(__file__).resolve().parents[1] / "biosegment" / "demo" / "model"
MODEL_NAME = "General EM membranes (ssTEM + FIB-SEM)"

#: Augmentations for a model that must work on other microscopes than its training data's.
GENERAL_AUGMENT = AugmentConfig(
    intensity_probability=0.8,
    brightness=0.15,
    contrast=0.35,
    gamma=0.5,
    scale_probability=0.5,
    scale_range=(0.75, 1.33),
    noise_probability=0.3,
    noise_sigma=0.08,
    blur_probability=0.2,
    blur_sigma=1.5,
    artefact_probability=0.3,
    invert_probability=0.0,
)

#: In-plane pixel sizes seen in training (4 nm ISBI, 10 nm NeuroProof), widened by the zoom
#: augmentation; inference rescales data whose known pixel size lies outside.
PIXEL_SIZE = {
    "in_plane_nm": [3.0, 13.3],
    "trained_on_nm": {"ISBI 2012": [50.0, 4.0, 4.0], "NeuroProof": [10.0, 10.0, 10.0]},
    "note": "z, y, x in nm; in_plane_nm is the range the model expects",
}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200, help="optimizer steps (default 1200)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="also stop after this many seconds of training in total (the "
        "learning-rate schedule follows whichever limit is nearer)",
    )
    parser.add_argument(
        "--isbi",
        type=Path,
        default=default_isbi_folder(),
        help="folder with train-volume.tif and train-labels.tif",
    )
    parser.add_argument(
        "--neuroproof",
        type=Path,
        default=default_neuroproof_folder(),
        help="folder with image.tif and bodies.tif",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEMO_MODEL_FOLDER,
        help="model folder to write (default: biosegment/demo/model)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for logs and resume state (default: a temporary one)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="continue from this model folder (a second, shorter stage with "
        "other shares or learning rate) instead of a new network",
    )
    parser.add_argument(
        "--isbi-share",
        type=float,
        default=0.45,
        help="share of crops from ISBI; the rest from NeuroProof XY/XZ/YZ as "
        "40/30/30 (default 0.45)",
    )
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def isbi_training_part(folder: Path) -> tuple:
    """ISBI slices 0-24 as an array (so the percentiles come from them alone) and class ids."""
    with open_volume(folder / "train-volume.tif") as volume:
        image = volume.read_block(TRAIN_SLICES.start, TRAIN_SLICES.stop)
    return image, isbi_labels(folder, TRAIN_SLICES)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    for needed in (args.isbi / "train-volume.tif", args.neuroproof / "bodies.tif"):
        if not needed.is_file():
            print(f"training data not found: {needed}; pass --isbi / --neuroproof", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    command = "python benchmarks/train_general_model.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="general_model_"))
    isbi_image, isbi_targets = isbi_training_part(args.isbi)
    # Sampling weights per labelled pixel: ISBI's 6.6 M pixels against 3 x 12.5 M.
    isbi_pixels, plane_pixels = isbi_targets.size, 200 * 250 * 250
    rest = 1.0 - args.isbi_share
    weights = tuple(
        share * rest / plane_pixels * isbi_pixels / args.isbi_share for share in (0.4, 0.3, 0.3)
    )
    training = [
        TrainingPair(isbi_image, isbi_targets, name="ISBI 2012 train-volume.tif z0-24"),
        *neuroproof_training_pairs(args.neuroproof, weights=weights),
    ]
    machine = machine_note()
    started = time.perf_counter()
    settings = TrainingSettings(
        feature_maps=8,
        levels=4,
        norm="instance",
        max_steps=args.steps,
        minutes=None if args.budget is None else args.budget / 60.0,
        steps_per_epoch=250,
        crop_size=args.crop,
        batch_size=args.batch,
        learning_rate=args.lr,
        validation_fraction=0.0,
        seed=args.seed,
        device="cpu",
        precision="fp32",
    )
    data = TrainingData(
        training,
        classes=ISBI_CLASSES,
        boundary_class=1,
        normalisation=None if args.base else percentile_normalisation(1.0, 99.0),
        name=MODEL_NAME,
    )
    observers = TrainingObservers(
        on_epoch=lambda record: print(
            f"epoch {record['epoch']} step {record['step']} "
            f"loss {record['train_loss']:.4f} "
            f"{record['elapsed_s']:.0f} s",
            flush=True,
        )
    )
    result = train_model(
        data,
        work,
        settings,
        base_model=args.base,
        augment=GENERAL_AUGMENT,
        observers=observers,
        resume=True,
    )
    seconds = time.perf_counter() - started
    model, card = load_model(work)
    card.pixel_size = dict(PIXEL_SIZE)
    card.training["provenance"] = {
        "data": [ISBI_SOURCE, NEUROPROOF_SOURCE],
        "held_out": "ISBI slices 25-29 and NeuroProof z 200-249 were never used for training "
        "or model selection (no validation split: the last step is the model)",
        "sampling": {
            "isbi_share": args.isbi_share,
            "neuroproof_planes": {"XY": 0.4, "XZ": 0.3, "YZ": 0.3},
        },
        "command": command,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 1),
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "training_seconds_all_sessions": round(result.elapsed_s, 1),
        "machine": {**machine, "load_average_after": machine_note()["load_average_1_5_15"]},
    }
    if args.base:
        # The stage this run continued: its own command, time and machine.
        card.training["provenance"]["first_stage"] = load_model(args.base)[1].training.get(
            "provenance"
        )
    card.training["licence"] = (
        "model weights: as BioSegment; trained on ISBI 2012 (cite) and "
        "NeuroProof training_sample2 (CC BY, HHMI Janelia FlyEM)"
    )
    path = save_model(model, card, args.out)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {result.steps} steps in "
        f"{seconds:.0f} s; the machine may have been shared; score it with "
        "benchmarks/bench_models.py"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
