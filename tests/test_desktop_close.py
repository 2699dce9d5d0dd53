"""Closing the desktop window stops BioSegment, and the next start resumes its jobs.

`biosegment run` opens its window on a virtual X display where a window manager runs; the
window is closed the way a person does it, through the window manager (``wmctrl -c`` asks it,
and it sends the window WM_DELETE_WINDOW, as its close button does). Then `run` and every
process below it (the window's process, QtWebEngine's helpers) must end, the log must say why,
and the jobs must wait in the queue: the running training goes back to ``queued`` (not
``failed``), the one behind it stays queued, and a headless restart runs both.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import pytest

from biosegment.desktop import window_backend
from biosegment.tasks import JobService
from job_fixtures import (
    DEMO_DATASET,
    QUICK_TRAIN,
    REPO,
    TINY_MODEL,
    TRAIN_DATASET,
    biosegment_env,
    job_row,
    make_folder,
    start_biosegment,
    stop_process,
    wait_for,
)
from x_display import alive, process_tree, require, virtual_display, window_manager, windows

SHOWN = re.compile(r"the desktop window shows the UI \(process (\d+)\)")
TERMINAL = ("succeeded", "failed", "cancelled")

pytestmark = pytest.mark.skipif(
    window_backend() != "qt", reason="no Qt backend for pywebview (biosegment[test] has it)"
)


class WindowedRun:
    """`biosegment run` with its window on ``display``; its output collected line by line."""

    def __init__(self, root, display: str):
        env = biosegment_env()
        # `true` stands in for the default browser, should the window fail.
        env.update(DISPLAY=display, BROWSER="true", PYTHONPATH=str(REPO))
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "biosegment", "--config", str(root / "biosegment.toml"), "run"],
            cwd=str(REPO),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def window_process(self, timeout: float = 90) -> int:
        found = wait_for(
            lambda: (
                next((m for m in map(SHOWN.search, list(self.lines)) if m), None)
                or self.process.poll() is not None
            ),
            timeout,
        )
        assert isinstance(found, re.Match), f"no window was shown:\n{self.output()}"
        return int(found.group(1))


def test_closing_the_window_stops_biosegment_and_a_restart_resumes_its_jobs(tmp_path):
    require("wmctrl", "wmctrl")
    root, config = make_folder(tmp_path, training=True, workers=1)
    service = JobService(config)
    restarted = None
    with virtual_display() as display, window_manager(display):
        run = WindowedRun(root, display)
        try:
            window = run.window_process()
            assert wait_for(lambda: "BioSegment" in windows(display), 30), windows(display)
            training = service.submit_train(
                dataset=TRAIN_DATASET, epochs=300, steps_per_epoch=2, name="kept", **QUICK_TRAIN
            )
            assert wait_for(lambda: len(job_row(root, training["id"])["metrics"]) >= 2, 60, 0.05), (
                service.job_log(training["id"])
            )
            # One worker: this job waits in the queue behind the training.
            waiting = service.submit_segment(DEMO_DATASET, TINY_MODEL)
            tree = process_tree(run.process.pid)
            assert window in tree and len(tree) >= 3, tree  # run, the window, QtWebEngine

            closed_at = time.monotonic()
            subprocess.run(
                ["wmctrl", "-F", "-c", "BioSegment"],
                env={**os.environ, "DISPLAY": display},
                check=True,
                timeout=30,
            )
            assert run.process.wait(45) == 0, run.output()
            assert wait_for(lambda: not alive(tree), 10), (alive(tree), run.output())
            assert time.monotonic() - closed_at < 45
        finally:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(10)
    log = config.log_file.read_text(encoding="utf-8")
    assert "window closed: stopping BioSegment; 2 job(s) kept for the next start" in log, log
    assert run.lines[-1].strip() == "stopped", run.output()
    interrupted = job_row(root, training["id"])
    assert interrupted["state"] == "queued", interrupted
    assert "interrupted by shutdown" in interrupted["message"]
    assert job_row(root, waiting["id"])["state"] == "queued"

    try:
        restarted = start_biosegment(root, "run", "--headless", log=tmp_path / "restart.log")
        done = wait_for(
            lambda: (
                job_row(root, waiting["id"])["state"] in TERMINAL and job_row(root, waiting["id"])
            ),
            60,
            0.1,
        )
        assert done and done["state"] == "succeeded", (done, service.job_log(waiting["id"]))
        assert wait_for(lambda: "resuming from epoch" in service.job_log(training["id"]), 60)
        resumed = job_row(root, training["id"])
        assert resumed["state"] == "running" and resumed["attempts"] == 2, resumed
        service.cancel(training["id"])  # 300 epochs are not needed to prove the point
        assert wait_for(lambda: job_row(root, training["id"])["state"] == "cancelled", 60)
    finally:
        service.close()
        if restarted is not None:
            assert stop_process(restarted, timeout=60) == 0
