"""`--wait` in a pipe or log file: a long job's progress shows up while it moves, not only at
each tenth (a log read 0.0 % for half an hour while the job row said 7.6 %)."""

from __future__ import annotations

import threading
import time

from biosegment.catalog import open_catalog
from biosegment.cli import job_commands
from webui_fixtures import make_demo_folder


def test_following_a_job_in_a_pipe_shows_progress_below_a_tenth(tmp_path, capsys, monkeypatch):
    root = make_demo_folder(tmp_path / "data")
    monkeypatch.setattr(job_commands, "_PIPE_LINE_S", 0.2)  # seconds, not the real 10
    with open_catalog(root) as catalog:
        job = catalog.create_job("train", {"dataset": "isbi2012-demo"})
        catalog.update_job(job["id"], state="running", progress=0.0, message="training")

        def work():
            with open_catalog(root) as writer:
                for step in range(1, 6):
                    time.sleep(0.4)
                    writer.update_job(job["id"], progress=step / 100)
                writer.update_job(job["id"], state="succeeded", progress=1.0, message="done")

        thread = threading.Thread(target=work)
        thread.start()
        row = job_commands.follow_job(catalog, job["id"])
        thread.join()
    assert row["state"] == "succeeded"
    said = capsys.readouterr().err
    shown = {float(part.split("%")[0]) for part in said.split("] ")[1:]}
    assert {1.0, 2.0, 3.0, 4.0, 5.0} & shown, said  # progress below 10 % reached the log
    assert len({p for p in shown if 0 < p < 10}) >= 3, said
