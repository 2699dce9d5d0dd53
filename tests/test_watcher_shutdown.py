"""Stopping the folder watcher logs nothing alarming: watchdog's inotify emitter may read once
more while it stops and log "queue_events() called when the thread is inactive"; a clean
shutdown must not print that (it showed at every few `biosegment run` stops)."""

from __future__ import annotations

import logging
import sys
import time

import pytest

from biosegment.daemon.watcher import DataFolderWatcher
from webui_fixtures import make_demo_folder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_stopping_while_files_change_logs_no_inotify_error(tmp_path, caplog):
    root = make_demo_folder(tmp_path / "data")
    caplog.set_level(logging.DEBUG, logger="watchdog")
    for i in range(40):
        watcher = DataFolderWatcher(
            root, refresh=lambda catalog, areas: None, open_catalog=lambda: None
        )
        watcher.start(initial_scan=False)
        time.sleep(0.03)
        (root / "EM" / f"touched-{i}.txt").write_text("x", encoding="utf-8")
        watcher.stop()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in said if "inactive" in m], said
