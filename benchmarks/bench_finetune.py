"""Benchmark of the fine-tuning loop: scribbles on 3 slices -> a train job -> scores on unpainted slices.

Scribbles are made from ground truth the way a person paints them: ``strokes`` (a short stroke
inside each of 8 objects and 8 strokes across the background of each slice; for a thin class
such as membranes, 8 short pieces along it) or ``grid`` (rows
and columns every 64 pixels, labelled from the ground truth). They go into a fresh data folder
as an annotation of 3 training slices, and a ``train`` job is submitted through the job
service and run by a real consumer (the path the viewer's fine-tune button takes), for each
budget in minutes, from scratch and, for ISBI, from the shipped demo model. Printed per run:
IoU and Dice of the foreground class on slices nobody painted, the job's steps per second and
the engine's steps per second for the same settings measured in the same process, and the time
to the first live snapshot when the job writes one (``jobs/<id>/live/``).

    python benchmarks/bench_finetune.py --data mito --budgets 1,2,5,10
    python benchmarks/bench_finetune.py --quick          # mito, 1 minute, from scratch
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from isbi_training import machine_note  # noqa: E402  (the helper sits beside this script)

DATA = {
    "mito": {
        "folder": "cdeep3m_mito",
        "train": ("training-image.tif", "training-labels.tif"),
        "test": ("validation-image.tif", "validation-labels.tif"),
        "membrane_is_zero": False,  # 255 in the file = mitochondrion (class 1)
    },
    "isbi": {
        "folder": "isbi2012",
        "train": ("train-volume.tif", "train-labels.tif"),
        "test": None,  # slices 25-29 of the training volume, never painted
        # ISBI: 0 = membrane, 255 = cell interior; membrane becomes class 1, as in the demo model
        "membrane_is_zero": True,
    },
}
PAINTED = (2, 9, 16)


FOREGROUND = 1  # the class scored: mitochondrion or membrane


def _class_ids(labels: np.ndarray, membrane_is_zero: bool) -> np.ndarray:
    return ((labels == 0) if membrane_is_zero else (labels > 0)).astype(np.uint8)


def scribbles(truth: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    """Painted labels (255 = unpainted) for one slice of class ids."""
    painted = np.full(truth.shape, 255, np.uint8)
    if style == "grid":
        painted[::64, :] = truth[::64, :]
        painted[:, ::64] = truth[:, ::64]
        painted[1::64, :] = truth[1::64, :]
        painted[:, 1::64] = truth[:, 1::64]
        return painted
    for class_id, count in ((1, 8), (0, 8)):
        mask = truth == class_id
        inside = ndimage.binary_erosion(mask, iterations=4)
        if inside.sum() < 0.25 * mask.sum():
            # a thin class (membranes): short pieces painted along it, where it is
            ys, xs = np.nonzero(mask)
            for point in rng.permutation(ys.size)[:count] if ys.size else []:
                near = (ys - ys[point]) ** 2 + (xs - xs[point]) ** 2 <= 15**2
                painted[ys[near], xs[near]] = class_id
            continue
        objects, found = ndimage.label(inside)
        if class_id and found:  # objects (mitochondria, cells): one stroke in each of a few
            chosen = rng.permutation(found)[:count] + 1
            places = [np.nonzero(objects == obj) for obj in chosen]
        else:  # the background: strokes at a few places across it
            ys, xs = np.nonzero(inside)
            places = [(ys, xs)] * count if ys.size else []
        for ys, xs in places:
            centre = rng.integers(0, ys.size)
            near = (ys - ys[centre]) ** 2 + (xs - xs[centre]) ** 2 <= 30**2
            # a stroke: a band 5 pixels wide through the point, inside the object
            band = np.abs((ys - ys[centre]) - (xs - xs[centre]) * rng.uniform(-1, 1)) <= 2.5
            keep = near & band
            painted[ys[keep], xs[keep]] = class_id
    return painted


def _prepare(kind: str, data_root: Path, folder: Path, style: str) -> tuple[np.ndarray, np.ndarray]:
    from biosegment.datafolder import init_data_folder
    from biosegment.volumes import write_png_slice

    spec = DATA[kind]
    source = data_root / spec["folder"]
    image = tifffile.imread(source / spec["train"][0])
    truth = _class_ids(tifffile.imread(source / spec["train"][1]), spec["membrane_is_zero"])
    init_data_folder(folder)
    (folder / "EM" / kind).mkdir(parents=True)
    shutil.copy(source / spec["train"][0], folder / "EM" / kind / "image.tif")
    annotation = folder / "annotations" / kind / "scribbles"
    annotation.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for z in PAINTED:
        write_png_slice(annotation / f"z{z:05d}.png", scribbles(truth[z], style, rng))
    (annotation / "annotation.json").write_text(
        json.dumps({"classes": [{"id": 1, "name": "object"}]}), encoding="utf-8"
    )
    if spec["test"]:
        test_image = tifffile.imread(source / spec["test"][0])
        test_truth = _class_ids(tifffile.imread(source / spec["test"][1]), spec["membrane_is_zero"])
    else:
        test_image, test_truth = image[25:30], truth[25:30]
    return test_image, test_truth


def _scores(model_folder: Path, image: np.ndarray, truth: np.ndarray, work: Path) -> dict:
    """IoU and Dice of the foreground on unpainted slices, segmented as a segment job does:
    the card's normalisation measured on the volume, whole slices, the default settings."""
    from biosegment.engine import load_model, segment_volume
    from biosegment.volumes import open_volume

    model, card = load_model(model_folder)
    path = work / "unpainted.tif"
    tifffile.imwrite(path, image)
    with open_volume(path) as volume:
        labels = segment_volume(volume, model, normalisation=dict(card.normalisation))
    predicted, wanted = labels == FOREGROUND, truth == FOREGROUND
    inter = int((predicted & wanted).sum())
    union = int((predicted | wanted).sum())
    total = int(predicted.sum()) + int(wanted.sum())
    return {"iou": inter / max(union, 1), "dice": 2 * inter / max(total, 1)}


def _engine_steps_per_second(folder: Path, kind: str, settings, base) -> float:
    """The engine alone, same data and settings, a fixed number of steps."""
    from biosegment.catalog import open_catalog
    from biosegment.engine.training import train_model
    from biosegment.tasks.train import _labels_from_annotation
    from biosegment.volumes import open_volume

    with open_catalog(folder) as catalog:
        labels = _labels_from_annotation(catalog, catalog.annotation(kind, "scribbles"))
    with (
        open_volume(folder / "EM" / kind / "image.tif") as volume,
        tempfile.TemporaryDirectory() as out,
    ):
        started = time.perf_counter()
        result = train_model(
            training=[(volume, labels)],
            output=Path(out) / "m",
            settings=settings.replace(minutes=None, max_steps=30, epochs=None),
            base_model=base,
        )
        del started
    return result.steps / result.elapsed_s


def run_one(
    kind: str, data_root: Path, style: str, minutes: float, base: str | None, options: dict
) -> dict:
    from biosegment.catalog import open_catalog, refresh
    from biosegment.config import load_config
    from biosegment.daemon.consumer import ConsumerHost
    from biosegment.engine.train_settings import TrainingSettings
    from biosegment.tasks import JobService

    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "data"
        test_image, test_truth = _prepare(kind, data_root, folder, style)
        base_path = None
        if base:
            shutil.copytree(ROOT / "biosegment" / "demo" / "model", folder / "models" / base)
            base_path = folder / "models" / base
        with open_catalog(folder) as catalog:
            refresh(catalog, folder)
        config = load_config(data_dir=folder, env={}, cwd=folder)
        host = ConsumerHost(config, role="worker")
        host.start()
        service = JobService(config)
        try:
            pressed = time.perf_counter()
            job = service.submit_train(
                annotation=f"{kind}/scribbles",
                base_model=base or "scratch",
                minutes=minutes,
                **options,
            )
            live = folder / ".biosegment" / "jobs" / job["id"] / "live"
            first_live = None
            while True:
                row = service.job(job["id"])
                if first_live is None and live.is_dir() and any(live.iterdir()):
                    first_live = time.perf_counter() - pressed
                if row["state"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - pressed
        finally:
            service.close()
            host.stop()
        if row["state"] != "succeeded":
            raise SystemExit(f"job {row['state']}: {row.get('message')}")
        card = json.loads((folder / "models" / row["result"]["model"] / "model.json").read_text())
        job_rate = card["training"]["steps"] / card["training"]["elapsed_s"]
        settings = TrainingSettings.from_dict(row["params"]["settings"])
        engine_rate = _engine_steps_per_second(folder, kind, settings, base_path)
        scores = _scores(
            folder / "models" / row["result"]["model"], test_image, test_truth, Path(temp)
        )
        if base_path is not None:  # the base model on the same slices, before fine-tuning
            before = _scores(base_path, test_image, test_truth, Path(temp))
            scores.update({f"{key}_before": value for key, value in before.items()})
        return {
            "data": kind,
            "style": style,
            "start": base or "scratch",
            "minutes": minutes,
            **options,
            "steps": card["training"]["steps"],
            "job_steps_per_s": round(job_rate, 3),
            "engine_steps_per_s": round(engine_rate, 3),
            "job_vs_engine": round(job_rate / engine_rate, 3),
            "wall_s": round(wall, 1),
            "first_live_s": None if first_live is None else round(first_live, 1),
            "validation": row["result"].get("validation", {}).get("label"),
            **{k: round(v, 4) for k, v in scores.items()},
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATA), default="mito")
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--budgets", default="1,2,5,10", help="minutes, comma-separated")
    parser.add_argument("--styles", default="strokes,grid")
    parser.add_argument(
        "--starts",
        default="scratch,base",
        help="scratch and/or base: the shipped membrane model (for mitochondria its class 1 is "
        "learned anew: a test of how fast pretrained EM features adapt)",
    )
    parser.add_argument("--quick", action="store_true", help="1 minute, strokes, from scratch")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=JSON",
        help="a training option other than the default, e.g. class_weights='\"auto\"'",
    )
    args = parser.parse_args(argv)
    options = {}
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    budgets = [float(b) for b in args.budgets.split(",")]
    styles = args.styles.split(",")
    starts = args.starts.split(",")
    if args.quick:
        budgets, styles, starts = [1.0], ["strokes"], ["scratch"]
    print("#", json.dumps(machine_note()), flush=True)
    for minutes in budgets:
        for style in styles:
            for start in starts:
                base = "demo-membrane" if start == "base" else None
                result = run_one(args.data, args.data_root, style, minutes, base, options)
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
