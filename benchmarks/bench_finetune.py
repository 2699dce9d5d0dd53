"""Benchmark of the fine-tuning loop: strokes -> a train job -> scores on slices nobody painted.

Strokes are made from ground truth by a simulated annotator (``annotator.py``): ``strokes`` (a
short stroke inside each of 8 objects and 8 across the background of each slice; for a thin
class such as membranes, 8 short pieces along it), ``grid`` (rows and columns every 64
pixels) or ``dense`` (whole slices: the full-label ceiling). They go into a fresh data folder
as an annotation of 3 training slices, and a ``train`` job is submitted through the job service
and run by a real consumer (the path the viewer's fine-tune button takes), with the defaults
and the budget. Printed per run: IoU and Dice of the foreground class on slices nobody
painted, the job's and the engine's steps per second, and the time to the first live snapshot.

``--rounds N`` models the loop as a person uses it: round 0 paints strokes on 3 slices and
presses fine-tune; every ``--round-seconds`` the simulated person looks at the live layer
(the job's latest snapshot) on the painted slices and one new slice and paints up to
``--strokes`` strokes, each along the middle of one of a slice's largest wrong regions (the
most wrong slices first); the running job takes them in. The live layer is also scored on the
unpainted slices at 10 s and 30 s and at every round. ``--ceiling`` adds a run on dense labels of the same 3 slices with the same budget, and
``--forest`` an ilastik-style random forest on the same strokes (``forest_baseline.py``).

    python benchmarks/bench_finetune.py --data mito --budgets 1,2,5,10
    python benchmarks/bench_finetune.py --data mito --budgets 3 --starts scratch --ceiling --forest
    python benchmarks/bench_finetune.py --data mito --rounds 3 --budgets 5 --starts scratch
    python benchmarks/bench_finetune.py --quick          # mito, 1 minute, from scratch
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotator import correction_strokes, first_strokes  # noqa: E402  (helpers beside it)
from isbi_training import machine_note  # noqa: E402

DATA = {
    "mito": {
        "folder": "cdeep3m_mito",
        "train": ("training-image.tif", "training-labels.tif"),
        "test": ("validation-image.tif", "validation-labels.tif"),
        "membrane_is_zero": False,  # 255 in the file = mitochondrion (class 1)
        "class": "mitochondrion",
    },
    "isbi": {
        "folder": "isbi2012",
        "train": ("train-volume.tif", "train-labels.tif"),
        "test": None,  # slices 25-29 of the training volume, never painted
        # ISBI: 0 = membrane, 255 = cell interior; membrane becomes class 1, as in the demo model
        "membrane_is_zero": True,
        "class": "membrane",
    },
    "fib": {
        "folder": "neuroproof_fib",
        "train": ("image.tif", "membranes.tif"),
        "test": None,  # z 200-249 of the same volume, never painted
        "membrane_is_zero": False,  # 255 = membrane (class 1)
        "class": "membrane",
    },
}
# Slices nobody paints, where a dataset has no separate test volume.
TEST_SLICES = {"isbi": slice(25, 30), "fib": slice(200, 250)}
# Slices a simulated person paints in later rounds (one new slice each round).
NEW_SLICES = (5, 12, 19, 23)
PAINTED = (2, 9, 16)


FOREGROUND = 1  # the class scored: mitochondrion or membrane


def _class_ids(labels: np.ndarray, membrane_is_zero: bool) -> np.ndarray:
    return ((labels == 0) if membrane_is_zero else (labels > 0)).astype(np.uint8)


@dataclass
class Prepared:
    """A fresh data folder with round 0's strokes, and what the benchmark scores against."""

    folder: Path
    annotation: Path  #: the annotation folder the job reads its strokes from
    image: np.ndarray  #: the training volume
    truth: np.ndarray  #: its class ids (for the simulated annotator)
    painted: dict  #: z -> painted labels of every slice painted so far
    strokes: int  #: strokes painted so far
    test_image: np.ndarray  #: slices nobody paints
    test_truth: np.ndarray

    def paint(self, z: int, labels: np.ndarray) -> None:
        from biosegment.volumes import write_png_slice

        self.painted[z] = labels
        write_png_slice(self.annotation / f"z{z:05d}.png", labels)

    @property
    def painted_share(self) -> float:
        """Painted pixels as a share of the painted slices' pixels."""
        done = [labels != 255 for labels in self.painted.values()]
        return float(np.mean([d.mean() for d in done])) if done else 0.0


def _prepare(kind: str, data_root: Path, folder: Path, style: str) -> Prepared:
    from biosegment.datafolder import init_data_folder

    spec = DATA[kind]
    source = data_root / spec["folder"]
    image = tifffile.imread(source / spec["train"][0])
    truth = _class_ids(tifffile.imread(source / spec["train"][1]), spec["membrane_is_zero"])
    init_data_folder(folder)
    (folder / "EM" / kind).mkdir(parents=True)
    shutil.copy(source / spec["train"][0], folder / "EM" / kind / "image.tif")
    annotation = folder / "annotations" / kind / "scribbles"
    annotation.mkdir(parents=True)
    # The person names what they paint: the class a base model also knows (membranes) or a
    # new one (mitochondria).
    classes = [{"id": 0, "name": "background"}, {"id": 1, "name": spec["class"]}]
    (annotation / "annotation.json").write_text(json.dumps({"classes": classes}), encoding="utf-8")
    if spec["test"]:
        test_image = tifffile.imread(source / spec["test"][0])
        test_truth = _class_ids(tifffile.imread(source / spec["test"][1]), spec["membrane_is_zero"])
    else:
        test_image, test_truth = image[TEST_SLICES[kind]], truth[TEST_SLICES[kind]]
    prepared = Prepared(folder, annotation, image, truth, {}, 0, test_image, test_truth)
    rng = np.random.default_rng(0)
    for z in PAINTED:
        prepared.paint(z, first_strokes(truth[z], style, rng))
        prepared.strokes += 0 if style in ("grid", "dense") else 16
    return prepared


def _predict(model_folder: Path, image: np.ndarray, work: Path) -> np.ndarray:
    """Class ids of ``image`` as a segment job makes them (the card's normalisation measured
    on the slices given, whole slices, the default settings)."""
    from biosegment.engine import load_model, segment_volume
    from biosegment.volumes import open_volume

    model, card = load_model(model_folder)
    path = work / "predict.tif"
    tifffile.imwrite(path, image, photometric="minisblack")  # 3 or 4 slices are no RGB
    with open_volume(path) as volume:
        return segment_volume(volume, model, normalisation=dict(card.normalisation))


def _overlap(predicted: np.ndarray, truth: np.ndarray) -> dict:
    predicted, wanted = predicted == FOREGROUND, truth == FOREGROUND
    inter = int((predicted & wanted).sum())
    union = int((predicted | wanted).sum())
    total = int(predicted.sum()) + int(wanted.sum())
    return {"iou": inter / max(union, 1), "dice": 2 * inter / max(total, 1)}


def _scores(model_folder: Path, image: np.ndarray, truth: np.ndarray, work: Path) -> dict:
    """IoU and Dice of the foreground on unpainted slices, segmented as a segment job does."""
    return _overlap(_predict(model_folder, image, work), truth)


def _engine_steps_per_second(folder: Path, kind: str, settings, base) -> float:
    """The engine alone, same data and settings, a fixed number of steps."""
    from biosegment.catalog import open_catalog
    from biosegment.engine.training import TrainingData, train_model
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
            TrainingData([(volume, labels)]),
            Path(out) / "m",
            settings.replace(minutes=None, max_steps=30, epochs=None),
            base_model=base,
        )
        del started
    return result.steps / result.elapsed_s


def _live_copy(live: Path, work: Path) -> Path | None:
    """The job's current live snapshot, copied aside (None: none yet)."""
    if not (live / "model.json").is_file() or not (live / "model.pytorch").is_file():
        return None
    target = work / "snapshot"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name in ("model.pytorch", "model.json"):
        shutil.copy(live / name, target / name)
    return target


def _correct(prepared: Prepared, snapshot: Path, new_slice: int, count: int, work: Path) -> int:
    """One round of the simulated person: look at the live layer on the painted slices and on
    one new slice and paint up to ``count`` strokes, each along the middle of one of a slice's
    largest wrong regions. The slices are visited from the most wrong pixels to the fewest; a
    painted slice takes at most half of the strokes left, the new slice all of them. Returns
    how many were painted."""
    slices = sorted({*prepared.painted, new_slice})
    predicted = _predict(snapshot, prepared.image[slices], work)
    candidates = []
    for index, z in enumerate(slices):
        before = prepared.painted.get(z, np.full(prepared.truth[z].shape, 255, np.uint8))
        # each slice's wrong regions compete for the round's strokes by size
        wrong = (predicted[index] != prepared.truth[z]) & (before == 255)
        candidates.append((int(wrong.sum()), z, index, before))
    budget, painted = count, 0
    for _, z, index, before in sorted(candidates, key=lambda item: -item[0]):
        if budget <= 0:
            break
        share = max(1, budget // 2) if z != new_slice else budget
        after, added = correction_strokes(
            prepared.truth[z], predicted[index], before, count=min(share, budget)
        )
        if added:
            prepared.paint(z, after)
            budget -= added
            painted += added
    prepared.strokes += painted
    return painted


def run_one(
    kind: str,
    data_root: Path,
    style: str,
    minutes: float,
    base: str | None,
    options: dict,
    *,
    rounds: int = 0,
    round_s: float = 60.0,
    strokes_per_round: int = 10,
    report=None,
) -> dict:
    from biosegment.catalog import open_catalog, refresh
    from biosegment.config import load_config
    from biosegment.daemon.consumer import ConsumerHost
    from biosegment.engine.train_settings import TrainingSettings
    from biosegment.tasks import JobService

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        folder = work / "data"
        prepared = _prepare(kind, data_root, folder, style)
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
        # Times (s after the request) at which the live layer is scored on unpainted slices;
        # a round of corrections follows each round time.
        round_times = [round_s * (i + 1) for i in range(rounds)]
        probes = sorted({10.0, 30.0, *round_times}) if rounds else []
        timeline = []
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
                now = time.perf_counter() - pressed
                if first_live is None and live.is_dir() and any(live.iterdir()):
                    first_live = now
                if row["state"] in ("succeeded", "failed", "cancelled"):
                    break
                if probes and now >= probes[0]:
                    at = probes.pop(0)
                    snapshot = _live_copy(live, work)
                    if snapshot is not None:
                        point = {
                            "at_s": at,
                            "strokes": prepared.strokes,
                            "painted_share": round(prepared.painted_share, 4),
                            **{
                                k: round(v, 4)
                                for k, v in _scores(
                                    snapshot, prepared.test_image, prepared.test_truth, work
                                ).items()
                            },
                        }
                        if at in round_times:
                            done = round_times.index(at)
                            fresh = [z for z in NEW_SLICES if z < prepared.image.shape[0]]
                            added = _correct(
                                prepared,
                                snapshot,
                                fresh[done % len(fresh)],
                                strokes_per_round,
                                work,
                            )
                            point.update(round=done + 1, added=added)
                        point["wall_s"] = round(time.perf_counter() - pressed, 1)
                        timeline.append(point)
                        if report:
                            report({"live": point})
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
            folder / "models" / row["result"]["model"],
            prepared.test_image,
            prepared.test_truth,
            work,
        )
        if base_path is not None:  # the base model on the same slices, before fine-tuning
            before = _scores(base_path, prepared.test_image, prepared.test_truth, work)
            scores.update({f"{key}_before": value for key, value in before.items()})
        result = {
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
            "comparison": row["result"].get("comparison"),
            **{k: round(v, 4) for k, v in scores.items()},
        }
        if rounds:
            result.update(
                rounds=rounds,
                strokes=prepared.strokes,
                painted_share=round(prepared.painted_share, 4),
                painted_slices=sorted(prepared.painted),
            )
            result["forest_final"] = _forest_scores(prepared)
        return result


def _forest_scores(prepared: Prepared) -> dict:
    """The random-forest baseline on the strokes painted so far, scored like the network."""
    import forest_baseline

    slices = sorted(prepared.painted)
    forest, fit_s = forest_baseline.fit_forest(
        [prepared.image[z] for z in slices], [prepared.painted[z] for z in slices]
    )
    predicted = np.stack([forest_baseline.predict(forest, plane) for plane in prepared.test_image])
    scores = _overlap(predicted, prepared.test_truth)
    return {**{k: round(v, 4) for k, v in scores.items()}, "fit_s": round(fit_s, 1)}


def run_forest(kind: str, data_root: Path, style: str) -> dict:
    """The random forest on round 0's strokes alone (the one-shot comparison)."""
    with tempfile.TemporaryDirectory() as temp:
        prepared = _prepare(kind, data_root, Path(temp) / "data", style)
        return {"data": kind, "style": style, "forest": _forest_scores(prepared)}


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
        "--rounds", type=int, default=0, help="correction rounds of the simulated person"
    )
    parser.add_argument(
        "--round-seconds", type=float, default=60.0, help="seconds of training between rounds"
    )
    parser.add_argument("--strokes", type=int, default=10, help="strokes a round at most")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also train on dense labels of the same slices with each budget",
    )
    parser.add_argument(
        "--forest", action="store_true", help="also score the random-forest baseline"
    )
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
    if args.rounds:
        styles = ["strokes"]
    print("#", json.dumps(machine_note()), flush=True)

    def report(line: dict) -> None:
        print(json.dumps(line), flush=True)

    if args.forest:
        for style in styles:
            report(run_forest(args.data, args.data_root, style))
    for minutes in budgets:
        for start in starts:
            base = "demo-membrane" if start == "base" else None
            for style in styles:
                report(
                    run_one(
                        args.data,
                        args.data_root,
                        style,
                        minutes,
                        base,
                        options,
                        rounds=args.rounds,
                        round_s=args.round_seconds,
                        strokes_per_round=args.strokes,
                        report=report,
                    )
                )
            if args.ceiling:
                report(run_one(args.data, args.data_root, "dense", minutes, base, options))


if __name__ == "__main__":
    sys.exit(main())
