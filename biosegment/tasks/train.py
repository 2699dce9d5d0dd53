"""The ``train`` job: annotations or ground truth (+ a base model) -> ``models/<name>/``.

Training data is a dataset's image volume with either a sparse annotation (one PNG of class ids
per painted slice, 255 where nothing was painted) or the dataset's ground truth
(``EM/<dataset>/labels/``; 0/255 masks count as classes 0/1). The engine trains in the job's
own folder (:attr:`JobWorkspace.training_dir`, ``.biosegment/jobs/<id>/model/``) and saves a resumable state after every epoch and
on cancel, so a job re-run after a shutdown or a ``kill -9`` goes on from its last epoch. Each
epoch's metrics go to the job row as they come. When training ends the folder is renamed into
``models/<name>/`` in one step (the weights, ``model.json`` and the TensorBoard ``logs/``) and
registered in the catalog with the base model as its parent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from biosegment.catalog.probe import ANNOTATION_SLICE
from biosegment.catalog.store import Catalog
from biosegment.engine.comparison import compare
from biosegment.engine.model_card import ModelCard
from biosegment.engine.progress import TrainingObservers
from biosegment.engine.samples import TrainingPair, collect_stacks
from biosegment.engine.train_settings import TrainingSettings
from biosegment.errors import CancelledError, InputError
from biosegment.folder_names import (
    LAST_EPOCH_DIR,
    MODEL_CARD,
    MODEL_WEIGHTS,
    MODELS_DIR,
    TRAINING_STATE,
)
from biosegment.paths import relative_to_root, resolve_inside
from biosegment.tasks.context import STOP_SHUTDOWN, JobContext
from biosegment.tasks.follow_ups import Finished, segment_after_accept
from biosegment.tasks.train_fit import require_training_fits
from biosegment.tasks.train_live import LiveTraining, discard_files, read_control
from biosegment.volumes import (
    annotation_slice_name,
    is_binary_mask,
    open_volume,
    read_class_ids,
    read_png_slice,
)

if TYPE_CHECKING:  # the training module imports torch, which the handler loads only when it runs
    from biosegment.engine.training import TrainingResult

if TYPE_CHECKING:  # the engine (torch) is imported when a job runs
    from biosegment.engine.trainer import TrainingResult

__all__ = ["run_train", "training_folder", "job_settings"]

# Files of the training folder that are working state, not part of the published model.
_WORKING_FILES = (TRAINING_STATE, LAST_EPOCH_DIR)
# Rows queued before the settings had one home: flat options, and the defaults of then (a
# resumed run must rebuild the same network).
_LEGACY_DEFAULTS = {
    "feature_maps": 16,
    "norm": "batch",
    "crop_size": 256,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "validation_fraction": 0.2,
}


def job_settings(ctx: JobContext) -> TrainingSettings:
    """The job's :class:`TrainingSettings`, with the configured device and threads filled in."""
    params = ctx.params
    if isinstance(params.get("settings"), dict):
        settings = TrainingSettings.from_dict(params["settings"])
    else:
        known = set(TrainingSettings.field_names())
        legacy = {k: v for k, v in params.items() if k in known and v is not None}
        if params.get("time_budget_s"):
            legacy["minutes"] = float(params["time_budget_s"]) / 60.0
        settings = TrainingSettings.from_dict({**_LEGACY_DEFAULTS, **legacy})
    engine = ctx.config.engine
    return settings.replace(
        device=settings.device or engine.device, threads=settings.threads or engine.threads
    )


def training_folder(ctx: JobContext) -> Path:
    return ctx.workspace.training_dir


def _labels_from_annotation(catalog: Catalog, row: dict) -> dict[int, np.ndarray]:
    folder = catalog.path_of(row)
    slices = row.get("slices") or []
    return _read_slices(folder, slices, row["location"])


def _painted_slices(folder: Path) -> list[int]:
    """The slices an annotation folder holds now (the catalog row may lag behind it)."""
    matches = (ANNOTATION_SLICE.match(p.name) for p in folder.iterdir()) if folder.is_dir() else ()
    return sorted(int(m.group(1)) for m in matches if m)


def _read_slices(folder: Path, slices: list, location: str) -> dict[int, np.ndarray]:
    if not slices:
        raise InputError(
            "the annotation has no painted slices yet", source=location, where="slices"
        )
    return {int(z): read_png_slice(folder / annotation_slice_name(int(z))) for z in slices}


def _labels_from_ground_truth(catalog: Catalog, dataset: dict) -> np.ndarray:
    location = dataset.get("ground_truth")
    if not location:
        raise InputError(f"dataset {dataset['name']!r} has no ground truth", where="dataset")
    with open_volume(catalog.path_of(dataset, "ground_truth")) as labels:
        binary = is_binary_mask(labels)
        return np.asarray(
            read_class_ids(labels.read_block(0, labels.shape[0]), binary=binary), dtype=np.uint8
        )


def _project_classes(ctx: JobContext, dataset: dict) -> list:
    project = dataset.get("project")
    if not project:
        return []
    try:
        return ctx.catalog.project(project).get("classes") or []
    except Exception:
        return []


def _classes_for(ctx: JobContext, dataset: dict, annotation: dict | None) -> list[dict] | None:
    """The classes a new network learns, with 0 = background: the annotation's as it was
    painted (its names), completed by the project's (colours, classes it does not name);
    None (the engine names them) when neither declares any, or their ids have gaps."""

    def by_id(classes: Iterable[object] | None) -> dict[int, dict]:
        return {int(c["id"]): c for c in classes or [] if isinstance(c, dict) and "id" in c}

    project = by_id(_project_classes(ctx, dataset))
    painted = by_id((annotation or {}).get("classes"))
    if not project and not painted:
        return None
    merged = {i: {**project.get(i, {}), **painted.get(i, {})} for i in {*project, *painted}}
    merged.setdefault(0, {"id": 0, "name": "background", "color": "#000000"})
    if sorted(merged) != list(range(len(merged))):
        return None  # gaps in the ids: let the engine name the classes
    return [merged[i] for i in range(len(merged))]


def run_train(ctx: JobContext) -> dict | Finished:
    """Handler of a claimed ``train`` job; see the module docstring.

    An accepted run also asks for a segmentation of its dataset with the new model (a
    follow-up that the runner submits).
    """
    from biosegment.engine.train_state import load_training_state
    from biosegment.engine.training import TrainingData, train_model

    params = ctx.params
    root = Path(ctx.config.data_dir)
    accepted = read_control(ctx.workspace)
    name = accepted["name"] if accepted and accepted.get("action") == "accept" else params["name"]
    final = resolve_inside(root, f"{MODELS_DIR}/{name}")
    if _published_by(final, ctx.job_id):
        return _register(ctx, final)
    catalog = ctx.catalog
    dataset = catalog.require_usable("dataset", params["dataset"])
    settings = job_settings(ctx)
    # Checked again now: the memory free may have shrunk since the job was queued, and a job
    # that does not fit fails with the reason before its data is read.
    require_training_fits(
        catalog,
        ctx.config,
        settings,
        dataset=params["dataset"],
        annotation=params.get("annotation"),
        base_model=params.get("base_model"),
        exact=True,
    )
    annotation_folder = annotation = None
    labels: dict[int, np.ndarray] | np.ndarray
    if params.get("annotation"):
        annotation = catalog.annotation(params["dataset"], params["annotation"])
        labels = _labels_from_annotation(catalog, annotation)
        source = f"annotations/{params['dataset']}/{params['annotation']}"
        annotation_folder = catalog.path_of(annotation)
    else:
        labels = _labels_from_ground_truth(catalog, dataset)
        source = dataset["ground_truth"]  # there is one: the labels were read from it
    base_path = None
    if params.get("base_model"):
        base_row = catalog.require_usable("model", params["base_model"], where="base_model")
        base_path = catalog.path_of(base_row)
    folder = training_folder(ctx)
    state = load_training_state(folder)
    if state is not None:
        ctx.log.write(f"resuming from epoch {state.get('epoch')} (step {state.get('step')})")
        ctx.report(None, f"resuming from epoch {state.get('epoch')}", force=True)
    ctx.log.write(f"training for {settings.budget_text()} ({settings.threads or 'all'} threads)")
    with open_volume(catalog.path_of(dataset), dataset.get("file_type")) as volume:

        def read_training() -> list:
            folder = annotation_folder
            assert folder is not None, "only an annotation is read again"
            return [(volume, _read_slices(folder, _painted_slices(folder), source))]

        live = LiveTraining(
            ctx.workspace,
            log=ctx.log.write,
            annotation_folder=annotation_folder,
            read_training=read_training,
            extra={"job": ctx.job_id, "dataset": params["dataset"]},
        )
        data = TrainingData(
            training=[(volume, labels)],
            # A fine-tune learns the classes as painted too: where they are the base model's
            # own, the base model's knowledge of the unpainted pixels is kept (keep_base).
            classes=_classes_for(ctx, dataset, annotation),
            name=params["name"],
            parent=params.get("base_model"),
            provenance={"job": ctx.job_id, "dataset": params["dataset"], "labels": source},
        )
        observers = TrainingObservers(
            on_progress=lambda fraction, eta: ctx.report(fraction, eta=eta),
            on_epoch=lambda record: ctx.add_metrics(_json_ready(record)),
            should_cancel=ctx.should_cancel,
            on_step=live.on_step,
            should_stop=live.should_stop,
        )
        result = _train_live(
            ctx,
            live,
            lambda: train_model(
                data, folder, settings, base_model=base_path, observers=observers, resume=True
            ),
        )
    # The row gets the run's complete history: epochs from before a restart included, once each.
    catalog.update_job(ctx.job_id, metrics=[_json_ready(r) for r in result.history])
    if result.best_epoch is None or not result.checkpoint.is_file():
        raise InputError(
            "training ended before a single epoch finished; nothing to save", where="epochs"
        )
    accepted = read_control(ctx.workspace)
    renamed = None
    if result.stopped_by == "stopped" and accepted and accepted.get("name"):
        renamed = accepted["name"]
        final = resolve_inside(root, f"{MODELS_DIR}/{renamed}")  # the person's name
    ground_truth = base_truth = None
    if params.get("annotation") and dataset.get("ground_truth"):
        ground_truth = _ground_truth_scores(ctx, dataset, folder, sorted(labels), settings)
        if base_path is not None and ground_truth is not None:
            base_truth = _ground_truth_scores(
                ctx, dataset, base_path, sorted(labels), settings, quiet=True
            )
    comparison = _against_base(params.get("base_model"), result, ground_truth, base_truth)
    validation = _amend_card(folder, name=renamed, ground_truth=ground_truth, comparison=comparison)
    _publish(ctx, folder, final)
    outcome = _register(
        ctx,
        final,
        stopped_by=result.stopped_by,
        best_epoch=result.best_epoch,
        validation=validation,
        ground_truth=ground_truth,
        comparison=comparison,
    )
    if comparison and (comparison.get("strokes") or {}).get("verdict") == "worse":
        ctx.log.write(f"the fine-tuned model is {comparison['strokes']['text']}", level="WARNING")
    shutil.rmtree(ctx.workspace.live_dir, ignore_errors=True)
    if result.stopped_by == "stopped":
        outcome["accepted"] = True
        return Finished(outcome, (segment_after_accept(params["dataset"], final.name),))
    return outcome


def _train_live(
    ctx: JobContext, live: LiveTraining, train: Callable[[], TrainingResult]
) -> TrainingResult:
    """``train()`` (the run, with the live callbacks); a discarded run leaves no files behind."""
    try:
        result = train()
    except CancelledError:
        live.finish()
        control = read_control(ctx.workspace)
        if ctx.stop_reason != STOP_SHUTDOWN:
            if control and control.get("action") == "discard":
                discard_files(ctx.workspace)
                ctx.log.write("discarded: the training folder and the live preview are removed")
            else:
                shutil.rmtree(ctx.workspace.live_dir, ignore_errors=True)
        raise
    live.finish()
    return result


def _against_base(
    base_name: str | None,
    result: TrainingResult,
    ground_truth: dict | None,
    base_truth: dict | None,
) -> dict | None:
    """The kept model against its base model: on the held-out strokes (the base's epoch-0
    record against the kept epoch's) and on the ground truth's unpainted slices."""
    if not base_name:
        return None
    base = next((r for r in result.history if r.get("epoch") == 0), None)
    kept = next((r for r in result.history if r.get("epoch") == result.best_epoch), None)
    validation = result.card.training.get("validation") or {}
    where = validation.get("label") or "on your strokes, held out"
    strokes = compare(base, kept, base_name=base_name, where=where) if base and kept else None
    truth = None
    if ground_truth and base_truth:
        truth = compare(base_truth, ground_truth, base_name=base_name, where=ground_truth["label"])
    if strokes is None and truth is None:
        return None
    return _json_ready({"strokes": strokes, "ground_truth": truth})


def _amend_card(
    folder: Path,
    *,
    name: str | None,
    ground_truth: dict | None,
    comparison: dict | None = None,
) -> dict:
    """Complete the card of a finished run before it is published: the person's name for it
    (when accepted under another name), its score against the dataset's ground truth and how
    it compares with its base model; return its validation entry (method, fraction, label)
    for the job's result."""
    from biosegment.engine.validation import validation_label  # the module imports torch

    path = folder / MODEL_CARD
    card = ModelCard.from_json(path.read_text(encoding="utf-8"))
    if name:
        card.name = name
    entry = dict(card.training.get("validation") or {})
    entry.setdefault("label", validation_label(entry.get("method"), entry.get("fraction")))
    card.training["validation"] = entry
    if ground_truth is not None:
        card.training["ground_truth"] = ground_truth
    if comparison is not None:
        card.training["comparison"] = comparison
    path.write_text(card.to_json(), encoding="utf-8")
    return {key: entry.get(key) for key in ("method", "fraction", "label")}


# Slices of the ground truth scored after a fine-tune from strokes: at most this many.
_GROUND_TRUTH_SLICES = 5


def _ground_truth_scores(
    ctx: JobContext,
    dataset: dict,
    folder: Path,
    painted: Iterable[int],
    settings: TrainingSettings,
    *,
    quiet: bool = False,
) -> dict | None:
    """Scores of the model in ``folder`` against the dataset's ground truth on slices nobody
    painted (None when every slice was painted)."""
    from biosegment.engine.checkpoint import load_model
    from biosegment.engine.device import resolve_device
    from biosegment.engine.validation import evaluate_stacks

    truth = _labels_from_ground_truth(ctx.catalog, dataset)
    free = [z for z in range(truth.shape[0]) if z not in set(painted)]
    if not free:
        return None
    picks = sorted({free[int(i)] for i in np.linspace(0, len(free) - 1, _GROUND_TRUTH_SLICES)})
    model, card = load_model(folder)
    with open_volume(ctx.catalog.path_of(dataset), dataset.get("file_type")) as volume:
        stacks = collect_stacks(
            [TrainingPair(volume, {z: truth[z] for z in picks}, name="ground truth")],
            dims=model.dims,
            normalisation=card.normalisation,
        )
    device = resolve_device(settings.device or "auto")
    names = [str(entry.get("name", entry["id"])) for entry in card.classes]
    scores = evaluate_stacks(model.to(device), stacks, device=device, class_names=names)
    wanted = ("mean_dice", "mean_iou", "pixel_error", "dice", "iou")
    summary: dict[str, object] = {key: _json_ready(scores[key]) for key in wanted if key in scores}
    summary["slices"] = picks
    summary["label"] = f"against the ground truth on {len(picks)} slices nobody painted"
    if not quiet:
        ctx.log.write(
            f"ground truth, unpainted slices {picks}: mean Dice {summary.get('mean_dice')}"
        )
    return summary


@overload
def _json_ready(record: dict) -> dict: ...
@overload
def _json_ready(record: list) -> list: ...
@overload
def _json_ready(record: object) -> object: ...
def _json_ready(record: object) -> object:
    """``record`` as plain JSON data: numpy scalars become numbers, tuples lists, keys text."""

    def convert(value: object) -> object:
        if isinstance(value, dict):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return convert(record)


def _published_by(final: Path, job_id: str) -> bool:
    """True when ``models/<name>/`` is this job's output (a re-run after the rename)."""
    card_path = final / MODEL_CARD
    if not card_path.is_file():
        return False
    try:
        card = ModelCard.from_json(card_path.read_text(encoding="utf-8"))
    except Exception:
        return False
    return (card.training.get("provenance") or {}).get("job") == job_id


def _publish(ctx: JobContext, folder: Path, final: Path) -> None:
    if final.exists():
        raise InputError(
            f"{MODELS_DIR}/{final.name} appeared while this job ran; nothing was "
            "overwritten (the trained model stays in the job folder)",
            where="name",
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    # One rename publishes the model; the working files go after it, so a crash in between
    # leaves either a resumable job folder or a published model, never neither.
    os.replace(folder, final)
    _drop_working_files(final)
    ctx.log.write(f"model saved to {MODELS_DIR}/{final.name}/")


def _drop_working_files(folder: Path) -> None:
    for name in _WORKING_FILES:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)


def _register(ctx: JobContext, final: Path, **extra: object) -> dict:
    from biosegment.engine.checkpoint import load_model

    root = Path(ctx.config.data_dir)
    _drop_working_files(final)
    _, card = load_model(final)
    location = relative_to_root(root, final / MODEL_WEIGHTS)
    ctx.catalog.upsert_model(
        name=final.name,
        location=location,
        architecture=dict(card.architecture),
        classes=list(card.classes),
        parent=ctx.params.get("base_model"),
        metrics=_json_ready(list(card.metrics)) or None,
        state="ok",
        error=None,
        origin="scan",
    )
    best = next((m for m in card.metrics if m.get("epoch") == extra.get("best_epoch")), None)
    return {
        "model": final.name,
        "location": location,
        "parent": ctx.params.get("base_model"),
        "epochs": len([m for m in card.metrics if m.get("epoch")]),
        **extra,
        "best": _json_ready(best) if best else None,
    }
