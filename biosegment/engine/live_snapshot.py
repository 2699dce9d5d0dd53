"""A running training's weights, saved at intervals for a live preview, and its per-step curve.

:class:`LiveRecorder` is an ``on_step`` callback of :func:`~biosegment.engine.train_model`.
It writes into one folder, which any process that sees it may read (the web server, or a
server on another machine sharing the data folder, while the run trains on a worker):

- ``model.pytorch`` and ``model.json``: the current weights, each replaced atomically (temporary
  file, then ``os.replace``) after the first step and then every ``interval_s`` of training;
- ``live.json``: the snapshot's step, epoch and training time, the validation figure of these
  very weights (scored on the held-out strokes at every snapshot) with a label saying what it
  was measured on, and, for a fine-tune, how they compare with the base model on the same
  strokes (``comparison``, see :mod:`biosegment.engine.comparison`); written last, so it never
  names weights newer than those on disk;
- a steps file (``steps.jsonl``, where the caller says): one line per optimizer step (step,
  loss, training seconds), appended at most once a second, for curves that grow per step.

Readers: :func:`read_live_status`, :func:`read_steps` and :func:`snapshot_version` (what a cache
of loaded snapshots is keyed by).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from biosegment.engine.checkpoint import save_model
from biosegment.engine.comparison import compare
from biosegment.engine.progress import TrainingProgress
from biosegment.engine.validation import validation_label
from biosegment.folder_names import JOB_STEPS, LIVE_STATUS, MODEL_WEIGHTS

__all__ = [
    "LiveRecorder",
    "LIVE_STATUS",
    "STEPS_FILE",
    "SNAPSHOT_INTERVAL_S",
    "read_live_status",
    "read_steps",
    "snapshot_version",
    "validation_figure",
]

#: The steps file's name inside the folder when the caller names no other file.
STEPS_FILE = JOB_STEPS
#: Seconds of training between two snapshots of the weights.
SNAPSHOT_INTERVAL_S = 5.0
#: The most of the training time that scoring snapshots on held-out pixels may take.
SCORING_SHARE = 0.05
# Per-step records are appended to the file at most this often (seconds).
_STEPS_FLUSH_S = 1.0
# Figures shown as "the" validation figure, best first; the first one a record has wins.
_FIGURES = ("mean_dice", "mean_iou", "pixel_error", "val_loss")
_FIGURE_NAMES = {
    "mean_dice": "mean Dice",
    "mean_iou": "mean IoU",
    "pixel_error": "pixel error",
    "val_loss": "validation loss",
}


def validation_figure(history: list[dict], validation: dict | None) -> dict | None:
    """The latest validation figure of a run: ``{"metric", "value", "label", "epoch", "step"}``.

    ``validation`` is the card's ``training.validation`` entry: its ``label`` (when the run
    wrote one) or its ``method`` says which pixels were scored.
    """
    validation = validation or {}
    for record in reversed(history):
        for metric in _FIGURES:
            value = record.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                where = validation.get("label") or validation_label(
                    validation.get("method"), validation.get("fraction")
                )
                return {
                    "metric": metric,
                    "value": float(value),
                    "label": f"{_FIGURE_NAMES[metric]} {where}".strip(),
                    "epoch": record.get("epoch"),
                    "step": record.get("step"),
                }
    return None


def _against_base(
    base: dict | None, current: dict | None, base_name: str | None, validation: dict | None
) -> dict | None:
    """The snapshot's weights against the base model on the same held-out strokes."""
    if base is None or current is None or not base_name:
        return None
    validation = validation or {}
    where = validation.get("label") or validation_label(
        validation.get("method"), validation.get("fraction")
    )
    return compare(base, current, base_name=base_name, where=where)


def _write_json_atomically(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


class LiveRecorder:
    """Snapshots of a run's weights and its per-step losses; see the module docstring.

    :param folder: where the files go (created when missing).
    :param steps_file: where the per-step records go (default: ``folder/steps.jsonl``).
    :param interval_s: training seconds between snapshots.
    :param extra: facts copied into every ``live.json`` (the job, its dataset).
    """

    def __init__(
        self,
        folder: Path,
        *,
        steps_file: Path | None = None,
        interval_s: float = SNAPSHOT_INTERVAL_S,
        extra: dict | None = None,
    ):
        self.folder = Path(folder)
        self.steps_file = Path(steps_file) if steps_file else self.folder / STEPS_FILE
        self.interval_s = float(interval_s)
        self.extra = dict(extra or {})
        self._last_snapshot = -math.inf
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()
        self.snapshots = 0
        self._scoring_s = 0.0  # seconds the latest scoring took
        self._scored_at = 0.0  # training time of the latest scoring
        self._scores: dict | None = None  # the latest snapshot scores

    def __call__(self, run: TrainingProgress) -> None:
        elapsed = run.elapsed()
        self._pending.append(
            {
                "step": run.step,
                "loss": None if run.last_loss is None else round(run.last_loss, 6),
                "elapsed_s": round(elapsed, 3),
            }
        )
        if time.monotonic() - self._last_flush >= _STEPS_FLUSH_S:
            self.flush_steps()
        if elapsed - self._last_snapshot >= self.interval_s:
            self.snapshot(run)

    def flush_steps(self) -> None:
        if not self._pending:
            return
        self.steps_file.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(record) + "\n" for record in self._pending)
        with open(self.steps_file, "a", encoding="utf-8") as handle:
            handle.write(lines)
        self._pending = []
        self._last_flush = time.monotonic()

    def _score(self, run: TrainingProgress) -> dict | None:
        """The held-out scores of the snapshot's weights, within a share of the training time.

        Scoring a few held-out strokes costs a fraction of a second; a large held-out region
        (the right-hand part of densely labelled slices) costs more. After a scoring that took
        ``t`` seconds, the next one waits until ``t / SCORING_SHARE`` seconds of training have
        passed (the previous scores stand meanwhile), so scoring takes at most
        :data:`SCORING_SHARE` of the training time and cheap scores follow every snapshot.
        """
        now = run.elapsed()
        if self._scores is not None and now - self._scored_at < self._scoring_s / SCORING_SHARE:
            return self._scores
        started = time.perf_counter()
        self._scores = run.score_now()
        self._scoring_s = time.perf_counter() - started
        self._scored_at = now
        return self._scores

    def snapshot(self, run: TrainingProgress) -> None:
        """Save the weights of this moment, then the status that names them."""
        self._last_snapshot = run.elapsed()
        card = run.card()
        save_model(run.model, card, self.folder)
        self.snapshots += 1
        current = self._score(run)
        validation = card.training.get("validation")
        status = {
            **self.extra,
            "step": run.step,
            "epoch": run.epoch,
            "elapsed_s": round(run.elapsed(), 2),
            "written_at": time.time(),
            "snapshots": self.snapshots,
            "weights": snapshot_version(self.folder),
            "validation": validation_figure(
                [*run.history, *([current] if current else [])], validation
            ),
            "comparison": _against_base(run.base_scores(), current, card.parent, validation),
            "training_pixels": run.training_pixels,
        }
        _write_json_atomically(self.folder / LIVE_STATUS, status)
        self.flush_steps()


def snapshot_version(folder: Path) -> str | None:
    """A token that changes whenever the snapshot's weights are replaced (None: none yet)."""
    try:
        stat = (Path(folder) / MODEL_WEIGHTS).stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def read_live_status(folder: Path) -> dict | None:
    """The latest ``live.json`` of a run, or None before the first snapshot."""
    try:
        return json.loads((Path(folder) / LIVE_STATUS).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_steps(steps_file: Path, *, after: int = 0) -> list[dict]:
    """Per-step records with a step above ``after``, in order.

    A run resumed after an interruption repeats the steps since its last saved state; the
    repeated ones replace the earlier records of the same steps.
    """
    try:
        text = Path(steps_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records: list[dict] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written right now
        step = record.get("step")
        if not isinstance(step, int):
            continue
        while records and records[-1]["step"] >= step:
            records.pop()
        records.append(record)
    return [r for r in records if r["step"] > after]
