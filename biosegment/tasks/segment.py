"""The ``segment`` job: dataset + model -> ``segmentations/<dataset>/<name>/`` (SPEC 2, 6).

The volume is cut into z-blocks (the engine's block plan). Each finished block is saved in the
job's parts folder, whose labels file is the record that the block is done, so a job that is
cancelled, shut down or killed resumes from
its last finished block. A job with several blocks hands each block to its runner's queue as its
own task, so every worker that consumes the queue takes a share (a runner in immediate mode, as
for ``--wait`` without a daemon, runs them itself); a one-block volume is computed right here,
in the job's own task. The runner that finishes
the last block assembles the labels and ``segmentation.json`` in a hidden staging folder and
renames it into place, so readers see the whole result or nothing, then registers it in the
catalog. Every step is idempotent: a job re-run after a crash at any point ends in one result.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biosegment import __version__
from biosegment.engine.label_output import (
    assemble_labels,
    assemble_probabilities,
    label_file_name,
)
from biosegment.engine.object_settings import ObjectRequest
from biosegment.engine.segment_settings import SegmentSettings
from biosegment.errors import InputError, NotFoundError
from biosegment.folder_lock import runner_alive
from biosegment.folder_names import (
    SEGMENTATION_CARD,
    SEGMENTATION_LABELS,
    SEGMENTATION_PROBABILITIES,
    SEGMENTATIONS_DIR,
)
from biosegment.paths import is_temporary_name, relative_to_root, resolve_inside
from biosegment.tasks.context import CONTINUES, JobContext
from biosegment.volumes import open_volume

if TYPE_CHECKING:  # the engine imports torch, which the handler loads only when it runs
    from biosegment.engine.inference import InferenceSettings
    from biosegment.engine.model_card import ModelCard
    from biosegment.engine.segment_settings import SegmentSettings
    from biosegment.engine.unet import UNet
    from biosegment.tasks.context import _Continues
    from biosegment.volumes.base import VolumeReader

    #: What a handler returns: the job's result, or CONTINUES while its blocks run elsewhere.
    Outcome = dict[str, Any] | _Continues

__all__ = ["run_segment", "run_segment_block", "segmentation_folder"]


def segmentation_folder(root: Path, dataset: str, name: str) -> Path:
    return resolve_inside(root, f"{SEGMENTATIONS_DIR}/{dataset}/{name}")


@dataclass
class _Inputs:
    """Everything one block needs, opened once per task."""

    volume: VolumeReader
    model: UNet
    card: ModelCard
    settings: SegmentSettings  # the job's options, as the row stores them
    inference: InferenceSettings  # what the engine computes with, made from them
    blocks: list[tuple[int, int]]
    dataset: dict[str, Any]
    model_row: dict[str, Any]
    voxel_size: tuple[float, float, float] | None  # the catalog's, written into the outputs


def _inference_settings(
    ctx: JobContext,
    settings: SegmentSettings,
    dims: int,
    normalisation: dict[str, Any] | None = None,
    zoom: float | None = None,
) -> InferenceSettings:
    from biosegment.engine.inference import InferenceSettings

    return InferenceSettings(
        block_z=settings.block_z,
        batch_size=settings.batch_size,
        window=settings.window_for(dims),
        precision=settings.precision,
        device=settings.device or ctx.config.engine.device,
        normalisation=normalisation,
        zoom=zoom,
    )


def _open_inputs(ctx: JobContext, stack: ExitStack) -> _Inputs:
    from biosegment.engine.checkpoint import load_model
    from biosegment.engine.inference import block_plan

    catalog = ctx.catalog
    dataset = catalog.require_usable("dataset", ctx.params["dataset"])
    model_row = catalog.require_usable("model", ctx.params["model"])
    volume = stack.enter_context(open_volume(catalog.path_of(dataset), dataset.get("file_type")))
    model, card = load_model(catalog.path_of(model_row))
    from biosegment.engine.pixel_size import zoom_for  # scipy: only when a job runs

    # The dataset's voxel size as the catalog knows it (setup.json or the file), so a model
    # trained for another pixel size sees membranes as thick as it learned them, and the
    # outputs are calibrated as the person set up the dataset.
    voxel_size = _catalog_voxel_size(dataset) or volume.voxel_size
    zoom = zoom_for(card.pixel_size, voxel_size)
    settings = SegmentSettings.from_job(ctx.params)
    dims = int(model.config["dims"])
    inference = _inference_settings(ctx, settings, dims, dict(card.normalisation), zoom)
    blocks = block_plan(volume, model, inference, probabilities=settings.keeps_probabilities)
    return _Inputs(volume, model, card, settings, inference, blocks, dataset, model_row, voxel_size)


def _catalog_voxel_size(dataset: dict[str, Any]) -> tuple[float, float, float] | None:
    """The dataset row's voxel size (nm, z y x): setup.json's, else what the file records."""
    value = dataset.get("voxel_size")
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    z, y, x = (float(v) for v in value)
    return (z, y, x)


def _done_blocks(ctx: JobContext, inputs: _Inputs) -> set[int]:
    """Blocks whose part is saved: the parts folder is the one record of finished blocks."""
    from biosegment.engine.inference import finished_blocks

    return finished_blocks(ctx.workspace.parts_dir, inputs.blocks)


def _compute_block(ctx: JobContext, inputs: _Inputs, index: int, total_done: int) -> None:
    """Segment block ``index`` into the parts folder (instant when its part already exists)."""
    from biosegment.engine.inference import segment_block

    z0, z1 = inputs.blocks[index]
    count = len(inputs.blocks)
    ctx.check_cancel()
    ctx.report(total_done / count, f"block {index + 1} of {count} (z {z0}-{z1 - 1})")
    segment_block(
        inputs.volume,
        inputs.model,
        z0,
        z1,
        settings=inputs.inference,
        parts_dir=ctx.workspace.parts_dir,
        probabilities=inputs.settings.keeps_probabilities,
        progress=lambda f: ctx.report((total_done + f) / count),
        should_cancel=ctx.should_cancel,
    )
    ctx.log.write(f"block {index + 1}/{count} (z {z0}-{z1 - 1}) done")


# -- entry points ---------------------------------------------------------------------------


def run_segment(ctx: JobContext) -> Outcome:
    """Handler of a claimed ``segment`` job; see the module docstring."""
    from biosegment.engine.device import apply_threads

    apply_threads(ctx.config.engine.threads)  # [engine] threads; 0 leaves PyTorch's choice
    finished = _already_published(ctx)
    if finished is not None:
        return finished
    with ExitStack() as stack:
        inputs = _open_inputs(ctx, stack)
        count = len(inputs.blocks)
        done = _done_blocks(ctx, inputs)
        todo = [i for i in range(count) if i not in done]
        ctx.log.write(
            f"{ctx.params['dataset']} {list(inputs.volume.shape)} with "
            f"{ctx.params['model']}: {count} block(s), {len(done)} already done"
        )
        if todo and count > 1:
            # Reported before the blocks are handed out: a runner may start on them at once.
            ctx.report(
                len(done) / count, f"{len(todo)} of {count} blocks queued for workers", force=True
            )
            pending = ctx.pending_blocks()
            for index in todo:
                if index not in pending:
                    ctx.enqueue_block(index)
            return CONTINUES
        for index in todo:
            _compute_block(ctx, inputs, index, len(_done_blocks(ctx, inputs)))
        return _publish(ctx, inputs)


def run_segment_block(ctx: JobContext, index: int) -> Outcome:
    """Handler of one queued block; the runner that completes the set publishes the result."""
    from biosegment.engine.device import apply_threads

    apply_threads(ctx.config.engine.threads)
    with ExitStack() as stack:
        inputs = _open_inputs(ctx, stack)
        if not 0 <= index < len(inputs.blocks):
            raise InputError(
                f"block {index} is not in the plan of {len(inputs.blocks)} blocks", where="block"
            )
        done = _done_blocks(ctx, inputs)
        if index not in done:
            _compute_block(ctx, inputs, index, len(done))
        if len(_done_blocks(ctx, inputs)) < len(inputs.blocks):
            ctx.report(len(_done_blocks(ctx, inputs)) / len(inputs.blocks))
            return CONTINUES
        return _publish(ctx, inputs)


# -- publishing ------------------------------------------------------------------------------


def _claim_assembly(ctx: JobContext) -> bool:
    """Only one runner assembles; a claim left by a dead runner is taken over."""
    claim = ctx.workspace.assembly_claim
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = claim.read_text(encoding="utf-8").strip()
            except OSError:
                owner = ""
            if owner == ctx.identity:
                return True
            if runner_alive(ctx.config.data_dir, owner):
                return False
            claim.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(ctx.identity)
        return True
    return False


def _card(ctx: JobContext, inputs: _Inputs, labels_location: str) -> dict[str, Any]:
    return {
        "dataset": ctx.params["dataset"],
        "name": ctx.params["name"],
        "model": ctx.params["model"],
        "model_location": inputs.model_row.get("location"),
        "labels": SEGMENTATION_LABELS,
        "shape": list(inputs.volume.shape),
        "voxel_size": None if inputs.voxel_size is None else list(inputs.voxel_size),
        "classes": list(inputs.card.classes or []),
        "settings": inputs.inference.as_dict(),
        "blocks": [list(b) for b in inputs.blocks],
        "job": ctx.job_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "biosegment": __version__,
        "location": labels_location,
    }


def _publish(ctx: JobContext, inputs: _Inputs) -> Outcome:
    if not _claim_assembly(ctx):
        return CONTINUES
    root = Path(ctx.config.data_dir)
    dataset, name = ctx.params["dataset"], ctx.params["name"]
    final = segmentation_folder(root, dataset, name)
    if final.exists():
        existing = _read_card(final)
        if existing.get("job") != ctx.job_id:
            raise InputError(
                f"segmentation {dataset}/{name} appeared while this job ran; "
                "nothing was overwritten",
                source=relative_to_root(root, final),
            )
        return _register(ctx, final, existing)
    ctx.report(None, "writing the segmentation", force=True)
    started = time.monotonic()
    # A dot-name: the watcher and the scan ignore the folder until it is renamed into place.
    staging = final.with_name(f".{name}.{ctx.job_id}.tmp")
    staging.mkdir(parents=True, exist_ok=True)
    # A writer killed mid-file (kill -9) left its hidden temporary here; it must not be
    # renamed into the published folder with the result.
    for leftover in staging.iterdir():
        if not is_temporary_name(leftover.name):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    # The job's output_format, else the config's: labels.tif or labels.ome.zarr.
    output_format = inputs.settings.output_format or ctx.config.engine.segmentation_format
    labels_name = label_file_name(output_format)
    version = ctx.config.engine.ome_zarr_version
    probabilities = inputs.settings.wants_probabilities
    if not (staging / labels_name).exists():
        assemble_labels(
            ctx.workspace.parts_dir,
            staging,
            output_format=output_format,
            voxel_size=inputs.voxel_size,
            classes=inputs.card.classes,
            version=version,
            keep=True,  # removed once the result is registered; later outputs read them
        )
    if probabilities and not (staging / SEGMENTATION_PROBABILITIES).exists():
        ctx.report(None, "writing the class probabilities", force=True)
        assemble_probabilities(
            ctx.workspace.parts_dir,
            staging,
            voxel_size=inputs.voxel_size,
            classes=inputs.card.classes,
            version=version,
        )
    card = _card(ctx, inputs, relative_to_root(root, final / labels_name))
    card["labels"] = labels_name
    if probabilities:
        card["probabilities"] = SEGMENTATION_PROBABILITIES
    request = _object_request(ctx, inputs)
    if request is not None:
        ctx.report(None, "counting and measuring objects", force=True)
        card.update(_write_objects(ctx, inputs, staging, request, output_format, version))
    (staging / SEGMENTATION_CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, final)
    ctx.log.write(f"wrote {relative_to_root(root, final)}/ in {time.monotonic() - started:.1f} s")
    return _register(ctx, final, card)


def _object_request(ctx: JobContext, inputs: _Inputs) -> ObjectRequest | None:
    """The objects this job makes: the request's classes, else those its project marks."""
    from biosegment.tasks.segment_objects import object_request  # scipy, scikit-image

    project_classes: list = []
    project = inputs.dataset.get("project")
    if project:
        try:
            project_classes = ctx.catalog.project(project).get("classes") or []
        except NotFoundError:
            project_classes = []
    return object_request(inputs.settings, inputs.card.classes or [], project_classes)


def _trained_slices(inputs: _Inputs, dataset: str) -> list[int]:
    """Slices of ``dataset`` the model trained on, as its card records them."""
    training = inputs.card.training or {}
    if (training.get("provenance") or {}).get("dataset") != dataset:
        return []
    slices: list[int] = []
    for entry in training.get("data") or []:
        slices.extend(int(z) for z in entry.get("slices") or [])
    return slices


def _write_objects(
    ctx: JobContext,
    inputs: _Inputs,
    staging: Path,
    request: ObjectRequest,
    output_format: str,
    version: str,
) -> dict[str, Any]:
    from biosegment.tasks.segment_objects import class_id_source, write_objects

    with ExitStack() as stack:
        truth = None
        if inputs.dataset.get("ground_truth"):
            labels = stack.enter_context(
                open_volume(ctx.catalog.path_of(inputs.dataset, "ground_truth"))
            )
            if tuple(labels.shape) == tuple(inputs.volume.shape):
                truth = class_id_source(labels)
        return write_objects(
            parts_dir=ctx.workspace.parts_dir,
            folder=staging,
            work_dir=ctx.workspace.folder,
            request=request,
            raw=inputs.volume,
            voxel_size=inputs.voxel_size,
            classes=inputs.card.classes or [],
            output_format=output_format,
            version=version,
            truth=truth,
            trained_slices=_trained_slices(inputs, ctx.params["dataset"]),
            log=ctx.log.write,
        )


def _already_published(ctx: JobContext) -> dict[str, Any] | None:
    """A re-run after a crash that followed the final rename only needs the catalog row."""
    final = segmentation_folder(ctx.config.data_dir, ctx.params["dataset"], ctx.params["name"])
    card = _read_card(final) if final.is_dir() else {}
    if card.get("job") == ctx.job_id:
        return _register(ctx, final, card)
    return None


def _read_card(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / SEGMENTATION_CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _register(ctx: JobContext, final: Path, card: dict[str, Any]) -> dict[str, Any]:
    location = relative_to_root(
        ctx.config.data_dir, final / card.get("labels", SEGMENTATION_LABELS)
    )
    ctx.catalog.upsert_segmentation(
        dataset=ctx.params["dataset"],
        name=ctx.params["name"],
        model=ctx.params["model"],
        location=location,
        state="ok",
        error=None,
        origin="scan",
    )
    shutil.rmtree(ctx.workspace.parts_dir, ignore_errors=True)
    return {
        "segmentation": f"{ctx.params['dataset']}/{ctx.params['name']}",
        "location": location,
        "shape": card.get("shape"),
    }
