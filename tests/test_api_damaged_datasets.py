"""Requests about a damaged dataset answer from the catalog; they never probe its files.

The scan (the daemon's refresh) probes a dataset's files and records why they cannot be read.
Web requests for such a dataset (tiles, thumbnail, voxel) used to probe the files again, each
on a server thread and one at a time, so a burst of them on a dataset that is slow to probe
held every thread and the dataset list waited for them. Now they are refused at once with the
recorded reason. Real HTTP against the real app.
"""

from __future__ import annotations

import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import Http, config_for, make_demo_folder, serve

SLICES = 2000  # every slice's header is read when probed: over a second on two cores


def _tiff_bytes(shape: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros(shape, np.uint8))
    return buffer.getvalue()


def _refresh(root: Path) -> dict:
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        return {row["name"]: row for row in catalog.datasets()}


@pytest.fixture
def site(tmp_path):
    """The demo folder plus ``EM/broken``: 2000 slice files whose last one has another size."""
    root = make_demo_folder(tmp_path / "data")
    folder = root / "EM" / "broken"
    folder.mkdir()
    first = folder / "z00000.tif"
    first.write_bytes(_tiff_bytes((8, 8)))
    for index in range(1, SLICES):
        os.link(first, folder / f"z{index:05d}.tif")  # the same bytes, written once
    last = folder / f"z{SLICES:05d}.tif"
    last.write_bytes(_tiff_bytes((9, 8)))
    row = _refresh(root)["broken"]
    assert row["state"] == "error" and "z02000.tif" in row["error"], row
    with serve(config_for(root)) as server:
        yield Http(server.url), root, last


def test_a_damaged_dataset_is_refused_with_the_recorded_reason_without_probing(site):
    http, root, last = site
    # The file is repaired, but no refresh has seen it: the catalog still says why it failed,
    # and requests answer that rather than probing 2001 files on a server thread.
    last.write_bytes(_tiff_bytes((8, 8)))
    for path in (
        "/api/v1/datasets/broken/thumbnail.png",
        "/api/v1/datasets/broken/tiles/raw/z/0/0/0/0.png",
        "/api/v1/datasets/broken/voxel?z=0&y=0&x=0",
    ):
        reply = http.get(path)
        assert reply.status == 400, (path, reply.status)
        error = reply.json()["error"]
        assert error.startswith("dataset 'broken' is error: ") and "z02000.tif" in error, error
        assert reply.json()["field"] == "dataset"
    # the refresh (the daemon's job) probes again, and then the dataset is served
    assert _refresh(root)["broken"]["state"] == "ok"
    assert http.get("/api/v1/datasets/broken/thumbnail.png").status == 200


def test_the_dataset_list_never_waits_for_a_burst_on_a_damaged_dataset(site):
    http, _, _ = site
    burst = [
        f"/api/v1/datasets/broken/{what}"
        for what in ("thumbnail.png", "tiles/raw/z/3/0/0/0.png", "voxel?z=1&y=1&x=1") * 6
    ]
    with ThreadPoolExecutor(len(burst)) as pool:
        answers = [pool.submit(http.get, path) for path in burst]
        time.sleep(0.2)
        started = time.monotonic()
        listing = http.get("/api/v1/datasets")
        waited = time.monotonic() - started
        statuses = [answer.result().status for answer in answers]
    assert listing.status == 200 and "broken" in [row["name"] for row in listing.json()]
    assert waited < 1.0, f"the dataset list waited {waited:.1f} s"
    assert statuses == [400] * len(burst), statuses
