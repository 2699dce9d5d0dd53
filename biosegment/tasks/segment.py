"""The ``segment`` job: dataset + model -> ``segmentations/<dataset>/<name>/`` (SPEC 2, 6).

The volume is cut into z-blocks (the engine's block plan). Each finished block is saved in the
job's parts folder and marked done, so a job that is cancelled, shut down or killed resumes from
its last finished block. Run from the queue, a job with several blocks hands each block to the
queue as its own task, so every worker that consumes the queue takes a share; in-process (``--wait``
without a daemon) and for a one-block volume the blocks run right here. The runner that finishes
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
from datetime import datetime, timezone
from pathlib import Path

from biosegment import __version__
from biosegment.daemon.pidlock import runner_alive
from biosegment.errors import InputError
from biosegment.paths import is_temporary_name, relative_to_root, resolve_inside
from biosegment.tasks.context import JobContext

__all__ = ["run_segment", "run_segment_block", "SEGMENTATION_LABELS", "SEGMENTATION_CARD",
           "segmentation_folder"]

SEGMENTATION_LABELS = "labels.tif"
SEGMENTATION_CARD = "segmentation.json"
_DONE_DIR = "blocks-done"


def segmentation_folder(root: Path, dataset: str, name: str) -> Path:
    return resolve_inside(root, f"segmentations/{dataset}/{name}")


@dataclass
class _Inputs:
    """Everything one block needs, opened once per task."""

    volume: object
    model: object
    card: object
    settings: object
    blocks: list[tuple[int, int]]
    dataset: dict
    model_row: dict


def _settings(ctx: JobContext, runner, dims: int, normalisation: dict | None = None,
              zoom: float | None = None):
    from biosegment.engine.inference import InferenceSettings

    params = ctx.params
    window = params.get("window")
    if isinstance(window, int):
        window = (window,) * dims  # one edge for every axis the network sees
    return InferenceSettings(
        block_z=params.get("block_z"), batch_size=params.get("batch_size"),
        window=None if window is None else tuple(window),
        precision=params.get("precision") or "auto",
        device=params.get("device") or runner.config.engine.device,
        normalisation=normalisation, zoom=zoom)


def _open_inputs(ctx: JobContext, runner, stack: ExitStack) -> _Inputs:
    from biosegment.engine import load_model
    from biosegment.engine.inference import block_plan
    from biosegment.volumes import open_volume

    root = runner.config.data_dir
    dataset = ctx.catalog.dataset(ctx.params["dataset"])
    model_row = ctx.catalog.model(ctx.params["model"])
    for row, what in ((dataset, "dataset"), (model_row, "model")):
        if row.get("state") != "ok" or not row.get("location"):
            raise InputError(f"{what} {row['name']!r} is {row.get('state')}: "
                             f"{row.get('error') or 'not readable'}", where=what)
    volume = stack.enter_context(open_volume(
        resolve_inside(root, dataset["location"], source="catalog", where="datasets.location"),
        dataset.get("file_type")))
    model, card = load_model(resolve_inside(root, model_row["location"], source="catalog",
                                            where="models.location"))
    from biosegment.engine.pixel_size import zoom_for

    # The dataset's voxel size as the catalog knows it (setup.json or the file), so a model
    # trained for another pixel size sees membranes as thick as it learned them.
    zoom = zoom_for(card.pixel_size, dataset.get("voxel_size") or volume.voxel_size)
    settings = _settings(ctx, runner, int(model.config["dims"]), dict(card.normalisation),
                         zoom)
    blocks = block_plan(volume, model, settings)
    return _Inputs(volume, model, card, settings, blocks, dataset, model_row)


def _done_dir(ctx: JobContext) -> Path:
    return ctx.workspace.folder / _DONE_DIR


def _done_blocks(ctx: JobContext) -> set[int]:
    folder = _done_dir(ctx)
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def _mark_done(ctx: JobContext, index: int) -> None:
    folder = _done_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(index)).touch()


def _compute_block(ctx: JobContext, inputs: _Inputs, index: int, total_done: int) -> None:
    """Segment block ``index`` into the parts folder (instant when its part already exists)."""
    from biosegment.engine.inference import segment_block

    z0, z1 = inputs.blocks[index]
    count = len(inputs.blocks)
    ctx.check_cancel()
    ctx.report(total_done / count, f"block {index + 1} of {count} (z {z0}-{z1 - 1})")
    segment_block(inputs.volume, inputs.model, z0, z1, settings=inputs.settings,
                  parts_dir=ctx.workspace.parts_dir,
                  progress=lambda f: ctx.report((total_done + f) / count),
                  should_cancel=ctx.should_cancel)
    _mark_done(ctx, index)
    ctx.log.write(f"block {index + 1}/{count} (z {z0}-{z1 - 1}) done")


# -- entry points ---------------------------------------------------------------------------


def run_segment(ctx: JobContext, runner, *, inline: bool):
    """Handler of a claimed ``segment`` job; see the module docstring."""
    from biosegment.tasks.runner import CONTINUES

    finished = _already_published(ctx, runner)
    if finished is not None:
        return finished
    with ExitStack() as stack:
        inputs = _open_inputs(ctx, runner, stack)
        count = len(inputs.blocks)
        done = _done_blocks(ctx)
        todo = [i for i in range(count) if i not in done]
        ctx.log.write(f"{ctx.params['dataset']} {list(inputs.volume.shape)} with "
                      f"{ctx.params['model']}: {count} block(s), {len(done)} already done")
        if todo and not inline and count > 1 and runner.huey is not None:
            pending = _pending_blocks(runner, ctx.job_id)
            for index in todo:
                if index not in pending:
                    runner.enqueue_block(ctx.job_id, index)
            ctx.report(len(done) / count, f"{len(todo)} of {count} blocks queued for workers",
                       force=True)
            return CONTINUES
        for index in todo:
            _compute_block(ctx, inputs, index, len(_done_blocks(ctx)))
        return _publish(ctx, runner, inputs)


def run_segment_block(ctx: JobContext, runner, index: int):
    """Handler of one queued block; the runner that completes the set publishes the result."""
    from biosegment.tasks.runner import CONTINUES

    with ExitStack() as stack:
        inputs = _open_inputs(ctx, runner, stack)
        if not 0 <= index < len(inputs.blocks):
            raise InputError(f"block {index} is not in the plan of {len(inputs.blocks)} blocks",
                             where="block")
        done = _done_blocks(ctx)
        if index not in done:
            _compute_block(ctx, inputs, index, len(done))
        if len(_done_blocks(ctx)) < len(inputs.blocks):
            ctx.report(len(_done_blocks(ctx)) / len(inputs.blocks))
            return CONTINUES
        return _publish(ctx, runner, inputs)


# -- publishing ------------------------------------------------------------------------------


def _pending_blocks(runner, job_id: str) -> set[int]:
    from biosegment.tasks.queue import pending_job_messages

    return {int(args[1]) for kind, args in pending_job_messages(runner.huey)
            if kind == "segment_block" and len(args) == 2 and args[0] == job_id}


def _claim_assembly(ctx: JobContext, runner) -> bool:
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
            if owner == runner.identity:
                return True
            if runner_alive(runner.config.data_dir, owner):
                return False
            claim.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(runner.identity)
        return True
    return False


def _card(ctx: JobContext, inputs: _Inputs, labels_location: str) -> dict:
    return {
        "dataset": ctx.params["dataset"],
        "name": ctx.params["name"],
        "model": ctx.params["model"],
        "model_location": inputs.model_row.get("location"),
        "labels": SEGMENTATION_LABELS,
        "shape": list(inputs.volume.shape),
        "classes": list(inputs.card.classes or []),
        "settings": inputs.settings.as_dict(),
        "blocks": [list(b) for b in inputs.blocks],
        "job": ctx.job_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "biosegment": __version__,
        "location": labels_location,
    }


def _publish(ctx: JobContext, runner, inputs: _Inputs) -> dict:
    from biosegment.engine.label_output import assemble_labels, label_file_name
    from biosegment.tasks.runner import CONTINUES

    if not _claim_assembly(ctx, runner):
        return CONTINUES
    root = Path(runner.config.data_dir)
    dataset, name = ctx.params["dataset"], ctx.params["name"]
    final = segmentation_folder(root, dataset, name)
    if final.exists():
        existing = _read_card(final)
        if existing.get("job") != ctx.job_id:
            raise InputError(f"segmentation {dataset}/{name} appeared while this job ran; "
                             "nothing was overwritten", source=relative_to_root(root, final))
        return _register(ctx, runner, final, existing)
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
    output_format = ctx.params.get("output_format") or runner.config.engine.segmentation_format
    labels_name = label_file_name(output_format)
    if not (staging / labels_name).exists():
        assemble_labels(ctx.workspace.parts_dir, staging, output_format=output_format,
                        voxel_size=inputs.volume.voxel_size, classes=inputs.card.classes)
    card = _card(ctx, inputs, f"segmentations/{dataset}/{name}/{labels_name}")
    card["labels"] = labels_name
    (staging / SEGMENTATION_CARD).write_text(json.dumps(card, indent=2) + "\n",
                                             encoding="utf-8")
    os.replace(staging, final)
    ctx.log.write(f"wrote segmentations/{dataset}/{name}/ in {time.monotonic() - started:.1f} s")
    return _register(ctx, runner, final, card)


def _already_published(ctx: JobContext, runner) -> dict | None:
    """A re-run after a crash that followed the final rename only needs the catalog row."""
    final = segmentation_folder(runner.config.data_dir, ctx.params["dataset"],
                                ctx.params["name"])
    card = _read_card(final) if final.is_dir() else {}
    if card.get("job") == ctx.job_id:
        return _register(ctx, runner, final, card)
    return None


def _read_card(folder: Path) -> dict:
    try:
        data = json.loads((folder / SEGMENTATION_CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _register(ctx: JobContext, runner, final: Path, card: dict) -> dict:
    location = relative_to_root(runner.config.data_dir,
                                final / card.get("labels", SEGMENTATION_LABELS))
    ctx.catalog.upsert_segmentation(dataset=ctx.params["dataset"], name=ctx.params["name"],
                                    model=ctx.params["model"], location=location, state="ok",
                                    error=None, origin="scan")
    shutil.rmtree(ctx.workspace.parts_dir, ignore_errors=True)
    return {"segmentation": f"{ctx.params['dataset']}/{ctx.params['name']}",
            "location": location, "shape": card.get("shape")}
