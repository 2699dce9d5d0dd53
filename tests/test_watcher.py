"""The data-folder watcher with a real watchdog observer on temporary folders.

Files are written the way people and tools write them (slowly, through a temporary name, a
hundred at once, deleted) and the catalog is read through its own connection, as the web UI
would, to see when each one is registered.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.daemon.watcher import DataFolderWatcher, classify_path
from biosegment.datafolder import init_data_folder


def tiff_bytes(shape=(4, 64, 64), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer, rng.integers(0, 255, size=shape, dtype=np.uint8), photometric="minisblack"
    )
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return init_data_folder(tmp_path / "data", write_config=False).root


@pytest.fixture
def watcher(folder: Path):
    made = []

    def start(**options) -> DataFolderWatcher:
        w = DataFolderWatcher(
            folder,
            refresh=lambda catalog: refresh(catalog, folder),
            open_catalog=lambda: open_catalog(folder),
            **options,
        )
        w.start()
        assert w.wait_idle(30)
        made.append(w)
        return w

    yield start
    for w in made:
        w.stop()


def dataset_rows(catalog, name: str) -> list[dict]:
    return [d for d in catalog.datasets() if d["name"] == name]


def wait_for(predicate, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_paths_are_classified_by_area_and_temporary_names_ignored(folder):
    assert classify_path(folder, folder / "setup.json") == "setup"
    assert classify_path(folder, folder / "EM" / "a.tif") == "EM"
    assert classify_path(folder, folder / "models" / "m" / "model.pytorch") == "models"
    assert classify_path(folder, folder / "EM" / "a.tif.part") is None
    assert classify_path(folder, folder / "EM" / ".a.tif") is None
    assert classify_path(folder, folder / "EM" / "a.tmp") is None
    assert classify_path(folder, folder / ".biosegment" / "catalog.db") is None
    assert classify_path(folder, folder / "notes.txt") is None


def test_slow_copy_is_registered_once_after_its_close(folder, watcher):
    w = watcher()
    data = tiff_bytes((24, 256, 256))
    catalog = open_catalog(folder)
    seen_states: list[tuple[float, str]] = []
    stop = threading.Event()

    def observe():
        while not stop.is_set():
            for row in dataset_rows(catalog, "slow"):
                seen_states.append((time.monotonic(), row["state"]))
            time.sleep(0.02)

    observer = threading.Thread(target=observe)
    observer.start()
    target = folder / "EM" / "slow.tif"
    chunk = len(data) // 6
    with open(target, "wb") as handle:
        for i in range(0, len(data), chunk):
            handle.write(data[i : i + chunk])
            handle.flush()
            os.fsync(handle.fileno())
            # One pause longer than the settle window: completeness must come from the close.
            time.sleep(1.5 if i == 2 * chunk else 0.4)
    closed_at = time.monotonic()
    row = wait_for(lambda: dataset_rows(catalog, "slow"), timeout=5)
    registered_at = time.monotonic()
    stop.set()
    observer.join()
    catalog.close()
    assert row, "the copied TIFF was never registered"
    assert row[0]["state"] == "ok", row[0]
    assert row[0]["shape"] == [24, 256, 256]
    before_close = [s for t, s in seen_states if t < closed_at]
    assert before_close == [], f"registered before the copy finished: {before_close}"
    assert all(state == "ok" for _, state in seen_states)
    assert registered_at - closed_at < 2.0, f"took {registered_at - closed_at:.2f} s after close"
    assert w.last_outcome is not None and w.last_outcome.error is None


def test_atomic_rename_into_the_folder_is_registered(folder, watcher):
    watcher()
    temporary = folder / "EM" / "renamed.tif.part"
    temporary.write_bytes(tiff_bytes())
    time.sleep(0.5)
    catalog = open_catalog(folder)
    try:
        assert dataset_rows(catalog, "renamed") == []
        assert dataset_rows(catalog, "renamed.tif") == []
        started = time.monotonic()
        os.replace(temporary, folder / "EM" / "renamed.tif")
        row = wait_for(lambda: dataset_rows(catalog, "renamed"), timeout=5)
        assert row and row[0]["state"] == "ok"
        assert time.monotonic() - started < 2.0
    finally:
        catalog.close()


def test_a_hundred_datasets_dropped_at_once_are_all_registered(folder, watcher, tmp_path):
    w = watcher()
    staging = tmp_path / "staging"
    staging.mkdir()
    payload = tiff_bytes((2, 32, 32))
    for i in range(100):
        (staging / f"stack{i:03d}.tif").write_bytes(payload)
    refreshes_before = w.refreshes
    for path in sorted(staging.iterdir()):
        shutil.copy(path, folder / "EM" / path.name)
    catalog = open_catalog(folder)
    try:
        names = wait_for(
            lambda: (
                {
                    d["name"]
                    for d in catalog.datasets()
                    if d["state"] == "ok" and d["name"].startswith("stack")
                }
                if len([d for d in catalog.datasets() if d["state"] == "ok"]) >= 100
                else None
            ),
            timeout=30,
            interval=0.1,
        )
        assert names == {f"stack{i:03d}" for i in range(100)}
    finally:
        catalog.close()
    # Debounced: a burst costs a few refreshes, not one per file.
    assert w.refreshes - refreshes_before < 20


def test_slice_folder_and_model_register_and_deletion_marks_missing(folder, watcher):
    watcher()
    slices = folder / "EM" / "sliced" / "raw"
    slices.mkdir(parents=True)
    for z in range(3):
        tifffile.imwrite(slices / f"z{z:03d}.tif", np.full((32, 48), z, dtype=np.uint8))
    from biosegment.engine import ModelCard, UNet, save_model

    save_model(
        UNet(feature_maps=4, levels=2), ModelCard(name="dropped"), folder / "models" / "dropped"
    )
    catalog = open_catalog(folder)
    try:
        row = wait_for(lambda: dataset_rows(catalog, "sliced"), timeout=5)
        assert row and row[0]["shape"] == [3, 32, 48]
        model = wait_for(lambda: [m for m in catalog.models() if m["name"] == "dropped"], timeout=5)
        assert model and model[0]["state"] == "ok"
        shutil.rmtree(folder / "EM" / "sliced")
        gone = wait_for(
            lambda: [d for d in dataset_rows(catalog, "sliced") if d["state"] == "missing"],
            timeout=5,
        )
        assert gone, dataset_rows(catalog, "sliced")
    finally:
        catalog.close()


def test_setup_json_edit_is_reconciled_within_a_second(folder, watcher):
    watcher()
    (folder / "EM" / "declared" / "raw").mkdir(parents=True)
    (folder / "EM" / "declared" / "raw" / "stack.tif").write_bytes(tiff_bytes())
    catalog = open_catalog(folder)
    try:
        assert wait_for(lambda: dataset_rows(catalog, "declared"), timeout=5)
        setup = folder / "setup.json"
        document = {
            "EM_location": "EM",
            "projects": [{"title": "Lab"}],
            "datasets": [{"title": "declared", "voxel_size": [40, 5, 5]}],
        }
        import json

        started = time.monotonic()
        setup.write_text(json.dumps(document), encoding="utf-8")
        row = wait_for(
            lambda: [
                d for d in dataset_rows(catalog, "declared") if d.get("voxel_size") == [40, 5, 5]
            ],
            timeout=3,
        )
        assert row, dataset_rows(catalog, "declared")
        assert time.monotonic() - started < 1.0
    finally:
        catalog.close()


def test_polling_mode_registers_a_file_once_its_size_settles(folder, watcher):
    watcher(poll=True, settle_seconds=0.5, poll_interval=0.2)
    target = folder / "EM" / "polled.tif"
    data = tiff_bytes((8, 128, 128))
    with open(target, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        catalog = open_catalog(folder)
        time.sleep(0.3)  # shorter than the settle window: must not register half a file
        assert dataset_rows(catalog, "polled") == []
        handle.write(data[len(data) // 2 :])
    try:
        row = wait_for(lambda: dataset_rows(catalog, "polled"), timeout=5)
        assert row and row[0]["state"] == "ok" and row[0]["shape"] == [8, 128, 128]
    finally:
        catalog.close()


# -- the completeness rules, with the clock passed in -----------------------------------------


def test_an_open_file_waits_for_its_close_however_long_the_writer_pauses(tmp_path):
    from biosegment.daemon.changes import ChangeTracker

    tracker = ChangeTracker(settle_seconds=1.0, quiet_seconds=0.2, lost_close_seconds=10.0)
    path = tmp_path / "a.tif"
    path.write_bytes(b"half")
    tracker.note_writing("EM", path, now=0.0)
    tracker.note_opened(path)
    assert tracker.due(now=0.5) == set()
    assert tracker.due(now=5.0) == set(), "a pause longer than the settle window is not the end"
    tracker.note_complete("EM", path, now=6.0, closed=True)
    assert tracker.due(now=6.1) == set(), "still inside the quiet window"
    assert tracker.due(now=6.3) == {"EM"}
    assert tracker.due(now=7.0) == set()


def test_a_file_seen_without_an_open_settles_by_size_and_mtime(tmp_path):
    from biosegment.daemon.changes import ChangeTracker

    tracker = ChangeTracker(settle_seconds=1.0, quiet_seconds=0.2)
    path = tmp_path / "b.tif"
    path.write_bytes(b"x" * 10)
    tracker.note_writing("EM", path, now=0.0)
    assert tracker.due(now=0.5) == set()
    path.write_bytes(b"x" * 20)  # it grew: the window starts again
    assert tracker.due(now=0.9) == set()
    assert tracker.due(now=1.5) == set()
    assert tracker.due(now=2.0) == {"EM"}


def test_a_lost_close_event_and_an_endless_writer_do_not_block_forever(tmp_path):
    from biosegment.daemon.changes import ChangeTracker

    tracker = ChangeTracker(settle_seconds=1.0, lost_close_seconds=10.0, max_wait_seconds=60.0)
    quiet = tmp_path / "quiet.tif"
    quiet.write_bytes(b"x")
    tracker.note_writing("EM", quiet, now=0.0)
    tracker.note_opened(quiet)
    assert tracker.due(now=1.0) == set()
    assert tracker.due(now=11.0) == {"EM"}, "silent and stable for the lost-close window"

    endless = tmp_path / "endless.log.tif"
    endless.write_bytes(b"x")
    tracker.note_writing("EM", endless, now=20.0)
    tracker.note_opened(endless)
    for t in range(21, 120, 3):
        endless.write_bytes(b"x" * t)  # keeps growing
        tracker.note_writing("EM", endless, now=float(t))
        if tracker.due(now=t + 0.5):
            assert t + 0.5 - 20.0 >= 60.0
            break
    else:
        pytest.fail("an endless writer held registration back for good")
