"""The watcher follows setup.json's EM_location, with a real watchdog observer on temp folders.

No periodic rescan runs here (the daemon's scheduler is not started), so a stack that is
catalogued was found through the observer's events on the image folder setup.json names.
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.daemon.watcher import DataFolderWatcher, classify_path
from biosegment.datafolder import init_data_folder
from test_watcher import wait_for  # the same polling helper as the watcher tests


def tiff_bytes(shape=(4, 64, 64)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, size=shape, dtype=np.uint8)
    tifffile.imwrite(buffer, pixels, photometric="minisblack")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return init_data_folder(tmp_path / "data", write_config=False).root


@pytest.fixture
def watcher(folder: Path):
    w = DataFolderWatcher(
        folder,
        refresh=lambda catalog: refresh(catalog, folder),
        open_catalog=lambda: open_catalog(folder),
    )
    w.start()
    assert w.wait_idle(30)
    yield w
    w.stop()


@pytest.fixture
def catalog(folder: Path):
    connection = open_catalog(folder)
    yield connection
    connection.close()


def set_em_location(folder: Path, location: str) -> None:
    document = json.loads((folder / "setup.json").read_text(encoding="utf-8"))
    document["EM_location"] = location
    (folder / "setup.json").write_text(json.dumps(document), encoding="utf-8")


def available(catalog, name: str) -> list[dict]:
    return [d for d in catalog.datasets() if d["name"] == name and d["state"] == "ok"]


def test_what_is_in_the_named_image_folder_counts_as_images(folder):
    assert classify_path(folder, folder / "scans" / "a.tif", images="scans") == "EM"
    assert classify_path(folder, folder / "lab" / "em" / "a" / "raw", images="lab/em") == "EM"
    assert classify_path(folder, folder / "lab" / "notes.txt", images="lab/em") is None
    assert classify_path(folder, folder / "scans" / "a.tif.part", images="scans") is None
    assert classify_path(folder, folder / "EM" / "a.tif", images="scans") == "EM"


def test_a_stack_dropped_into_a_relocated_image_folder_is_catalogued_at_once(
    folder, watcher, catalog
):
    (folder / "scans").mkdir()
    (folder / "scans" / "before.tif").write_bytes(tiff_bytes())
    assert watcher.image_location == "EM"
    set_em_location(folder, "scans")
    # The refresh that applies setup.json scans the new folder and moves the watch there.
    assert wait_for(lambda: available(catalog, "before"), timeout=5)
    assert wait_for(lambda: watcher.image_location == "scans", timeout=5)
    assert watcher.wait_idle(10)

    started = time.monotonic()
    (folder / "scans" / "dropped.tif").write_bytes(tiff_bytes())
    row = wait_for(lambda: available(catalog, "dropped"), timeout=5)
    assert row, catalog.datasets()
    assert row[0]["location"] == "scans/dropped.tif"
    assert time.monotonic() - started < 3.0

    # Moved back: the old folder is no longer the image folder, EM/ is again.
    set_em_location(folder, "EM")
    assert wait_for(lambda: watcher.image_location == "EM", timeout=5)
    (folder / "EM" / "home.tif").write_bytes(tiff_bytes())
    assert wait_for(lambda: available(catalog, "home"), timeout=5)


def test_an_image_folder_made_after_setup_json_names_it_is_watched_when_it_appears(
    folder, watcher, catalog
):
    set_em_location(folder, "lab/scans")
    assert wait_for(lambda: watcher.image_location == "lab/scans", timeout=5)
    assert watcher.wait_idle(10)
    (folder / "lab").mkdir()
    time.sleep(0.3)
    (folder / "lab" / "scans").mkdir()
    time.sleep(0.3)
    started = time.monotonic()
    (folder / "lab" / "scans" / "late.tif").write_bytes(tiff_bytes())
    row = wait_for(lambda: available(catalog, "late"), timeout=5)
    assert row, catalog.datasets()
    assert time.monotonic() - started < 3.0


def test_an_image_folder_that_leads_out_of_the_data_folder_is_refused_and_logged(
    folder, watcher, catalog, tmp_path, caplog
):
    (folder / "scans").mkdir()
    set_em_location(folder, "scans")
    assert wait_for(lambda: watcher.image_location == "scans", timeout=5)
    assert watcher.wait_idle(10)
    outside = tmp_path / "outside"
    outside.mkdir()
    caplog.set_level(logging.WARNING, logger="biosegment.daemon.image_folder")
    set_em_location(folder, "../outside")
    assert wait_for(
        lambda: any("EM_location" in r.getMessage() for r in caplog.records), timeout=5
    ), caplog.text
    assert watcher.wait_idle(10)
    (outside / "escaped.tif").write_bytes(tiff_bytes())
    (folder / "scans" / "kept.tif").write_bytes(tiff_bytes())
    # The last valid setup's folder is still the one watched; nothing outside is read.
    assert wait_for(lambda: available(catalog, "kept"), timeout=5)
    assert watcher.image_location == "scans"
    assert available(catalog, "escaped") == []
