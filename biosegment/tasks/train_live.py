"""The live side of a ``train`` job: preview snapshots, strokes that join, accept and discard.

While a train job runs, :class:`LiveTraining` is its ``on_step`` and ``should_stop`` callback:

- it saves the current weights into ``.biosegment/jobs/<id>/live/`` every few seconds (see
  :mod:`biosegment.engine.live_snapshot`), from which the web server predicts what the viewer
  shows, wherever the job runs;
- every :data:`STROKES_CHECK_S` seconds it looks at the annotation's files; when a person
  painted (or erased) since, it reads the annotation again and the run trains on the new
  strokes from its next batch, without a restart;
- it polls the job's control file (:attr:`JobWorkspace.control_file`), written by
  :func:`request_accept` / :func:`request_discard` when a person asks
  :class:`~biosegment.tasks.service.JobService` to accept or discard the run. ``accept`` ends
  training as a budget would (the best weights are the model) and names the model;
  ``discard`` comes with a cancel request, and :func:`discard_files` then removes every file
  the job made: in the job as it stops, or, for a job nobody works on any more, in the
  queue's ``discard_job`` task (:func:`discard_if_requested`).

A file in the job's folder, not a catalog column, carries the request: the job reads it with
one ``stat`` per poll, and any process that mounts the data folder can write it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from biosegment.engine.progress import TrainingProgress
from biosegment.errors import InputError
from biosegment.tasks.workspace import JobWorkspace

__all__ = [
    "LiveTraining",
    "read_control",
    "request_accept",
    "request_discard",
    "discard_files",
    "discard_if_requested",
    "STROKES_CHECK_S",
]

#: Seconds between two looks at the annotation's files for new strokes.
STROKES_CHECK_S = 5.0
# Seconds between two looks at the control file.
_CONTROL_CHECK_S = 0.5
_ACTIONS = ("accept", "discard")


def read_control(workspace: JobWorkspace) -> dict | None:
    """The request a person made of the job (``{"action", "name"}``), or None."""
    try:
        data = json.loads(workspace.control_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("action") in _ACTIONS else None


def _write_control(workspace: JobWorkspace, data: dict) -> None:
    path = workspace.control_file
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps({**data, "at": time.time()}), encoding="utf-8")
    os.replace(temporary, path)


def request_accept(workspace: JobWorkspace, name: str) -> None:
    """Ask a running train job to stop now, keep its best weights and publish them as ``name``."""
    _write_control(workspace, {"action": "accept", "name": name})


def request_discard(workspace: JobWorkspace) -> None:
    """Mark a train job's work for removal: the job removes it as it stops (the caller asks
    it to cancel), or :func:`discard_if_requested` does once nobody works on it."""
    _write_control(workspace, {"action": "discard"})


def discard_files(workspace: JobWorkspace) -> None:
    """Remove what a discarded train job made: training folder, live folder, step curve.

    The log stays: it is the job's record, shown on the jobs page.
    """
    for folder in (workspace.training_dir, workspace.live_dir):
        shutil.rmtree(folder, ignore_errors=True)
    workspace.control_file.unlink(missing_ok=True)
    workspace.steps_file.unlink(missing_ok=True)


def discard_if_requested(workspace: JobWorkspace) -> bool:
    """Remove a stopped train job's files when a person discarded it; True when it did."""
    control = read_control(workspace)
    if not control or control.get("action") != "discard":
        return False
    discard_files(workspace)
    return True


def annotation_signature(folder: Path) -> tuple:
    """Names, sizes and times of an annotation's files: changes whenever someone paints."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        return ()
    signature = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file():
            continue
        stat = entry.stat()
        signature.append((entry.name, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


class LiveTraining:
    """Callbacks of one train job's run; see the module docstring.

    :param workspace: the job's folder.
    :param log: writes a line to the job's log.
    :param annotation_folder: the annotation trained on (None: ground truth, which does
        not change while the job runs).
    :param read_training: reads the training material again (``(image, labels)`` pairs).
    :param extra: facts for every ``live.json``.
    """

    def __init__(
        self,
        workspace: JobWorkspace,
        *,
        log: Callable[[str], None],
        annotation_folder: Path | None,
        read_training: Callable[[], list],
        extra: dict | None = None,
    ):
        from biosegment.engine.live_snapshot import LiveRecorder

        self.workspace = workspace
        self.log = log
        self.annotation_folder = annotation_folder
        self.read_training = read_training
        self.recorder = LiveRecorder(
            workspace.live_dir, steps_file=workspace.steps_file, extra=extra
        )
        self._signature = annotation_signature(annotation_folder) if annotation_folder else ()
        self._last_strokes_check = time.monotonic()
        self._last_control_check = -float("inf")
        self._control: dict | None = None
        self.stroke_updates = 0

    # -- on_step ---------------------------------------------------------------------------

    def on_step(self, run: TrainingProgress) -> None:
        self.recorder(run)
        now = time.monotonic()
        if self.annotation_folder is not None and now - self._last_strokes_check >= STROKES_CHECK_S:
            self._last_strokes_check = now
            self._take_new_strokes(run)

    def _take_new_strokes(self, run: TrainingProgress) -> None:
        if self.annotation_folder is None:
            return  # ground truth: nothing to follow
        signature = annotation_signature(self.annotation_folder)
        if signature == self._signature:
            return
        try:
            pixels = run.replace_training(self.read_training())
        except InputError as exc:
            # Everything erased, say: keep training on what it had, and say why.
            self.log(f"new strokes not taken: {exc}")
            self._signature = signature
            return
        self._signature = signature
        self.stroke_updates += 1
        self.log(f"new strokes taken at step {run.step}: {pixels} labelled training pixels")
        self.recorder.snapshot(run)  # the status says how many pixels it now trains on

    # -- should_stop -----------------------------------------------------------------------

    def control(self) -> dict | None:
        """The person's request, read at most every half second."""
        now = time.monotonic()
        if now - self._last_control_check >= _CONTROL_CHECK_S:
            self._last_control_check = now
            self._control = read_control(self.workspace)
        return self._control

    def should_stop(self) -> bool:
        control = self.control()
        return bool(control and control.get("action") == "accept")

    def finish(self) -> None:
        """Write the last per-step records (the run ended or stopped)."""
        self.recorder.flush_steps()
