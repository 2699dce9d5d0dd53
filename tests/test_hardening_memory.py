"""Memory follows what a request shows, not what a file claims; concurrent saves never fail.

The big files are made here at test time (tests/data/bad/make_big.py): a 1 MB zlib TIFF of
30000 x 30000 zeros, a folder of two 20000 x 20000 ones, a 79 KB PNG of 9000 x 9000 and a
TIFF of 20000 small pages. The server
runs in a child process, and its resident set (``/proc/<pid>/status``) is what is measured.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from server_process import child_server, peak_rss_bytes, rss_bytes
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, serve

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "bad"))
from make_big import big_png, big_zlib_tiff, many_pages_tiff  # noqa: E402

GB = 2**30


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = make_demo_folder(tmp_path_factory.mktemp("memory") / "data")
    big_zlib_tiff(root / "EM" / "wide.tif")
    many_pages_tiff(root / "EM" / "deep.tif")
    (root / "EM" / "wideseq").mkdir()
    for z in range(2):  # a folder of such slices is read window by window too
        big_zlib_tiff(root / "EM" / "wideseq" / f"s{z}.tif", side=20000)
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        assert catalog.dataset("wide")["shape"] == [1, 30000, 30000]
        assert catalog.dataset("wideseq")["shape"] == [2, 20000, 20000]
        assert catalog.dataset("deep")["state"] == "ok"
    return root


def test_50_parallel_big_tiles_and_png_uploads_stay_under_1_gb(site, tmp_path):
    bomb = big_png()
    assert len(bomb) < 200_000
    with child_server(site, tmp=tmp_path) as (url, pid):
        http = Http(url)
        created = http.post(
            f"/api/v1/datasets/{DEMO_DATASET}/annotations", json_body={"name": "painted"}
        )
        assert created.status in (200, 201), created.body
        start = rss_bytes(pid)
        tiles = [
            f"/api/v1/datasets/{name}/tiles/raw/z/{z}/0/{row}/{col}.png"
            for name, z in (("wide", 0), ("wideseq", 1))
            for row in range(4)
            for col in range(3)
        ] + ["/api/v1/datasets/wideseq/tiles/raw/y/7/0/0/0.png"]
        upload = f"/api/v1/datasets/{DEMO_DATASET}/annotations/painted/slices/3"

        def call(i: int):
            if i % 2:
                return http.put(upload, body=bomb, headers={"Content-Type": "image/png"})
            return http.get(tiles[i // 2])

        with ThreadPoolExecutor(50) as pool:
            replies = list(pool.map(call, range(50)))
        peak = peak_rss_bytes(pid)
        y_tile_seconds = []
        for level, row in ((0, 0), (0, 20), (3, 2), (6, 0)):
            started = time.monotonic()
            reply = http.get(f"/api/v1/datasets/deep/tiles/raw/y/3/{level}/{row}/0.png")
            assert reply.status == 200, (level, reply.body[:300])
            y_tile_seconds.append(time.monotonic() - started)
    tile_statuses = {r.status for i, r in enumerate(replies) if not i % 2}
    upload_replies = [r for i, r in enumerate(replies) if i % 2]
    assert tile_statuses == {200}, [r.body[:200] for r in replies if r.status != 200]
    assert {r.status for r in upload_replies} == {400}, [r.body for r in upload_replies]
    assert "9000x9000" in upload_replies[0].json()["error"]
    assert upload_replies[0].json()["field"] == "body"
    print(f"server RSS {start / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB")
    assert peak < 1 * GB, f"peak RSS {peak / 2**20:.0f} MiB"
    # a tile across the 20000 pages reads the pages it shows, not all of them
    assert max(y_tile_seconds) < 2.0, y_tile_seconds


def test_a_big_png_upload_is_refused_from_its_header(site):
    """In-process too: the size check happens before decoding (field and sizes named)."""
    with serve(config_for(site)) as server:
        http = Http(server.url)
        http.post(f"/api/v1/datasets/{DEMO_DATASET}/annotations", json_body={"name": "hdr"})
        reply = http.put(
            f"/api/v1/datasets/{DEMO_DATASET}/annotations/hdr/slices/0",
            body=big_png(),
            headers={"Content-Type": "image/png"},
        )
    assert reply.status == 400 and reply.json()["field"] == "body"
    assert "slice is 9000x9000" in reply.json()["error"]


def test_concurrent_annotation_saves_never_fail(tmp_path):
    """20 threads save 200 slices of one annotation: every save answers 200 and is stored."""
    root = make_demo_folder(tmp_path / "data")
    tifffile.imwrite(
        root / "EM" / "tall.tif", np.zeros((200, 16, 16), np.uint8), photometric="minisblack"
    )
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        http = Http(server.url)
        created = http.post("/api/v1/datasets/tall/annotations", json_body={"name": "race"})
        assert created.status in (200, 201), created.body

        def save(z: int) -> int:
            labels = np.full((16, 16), 255, np.uint8)
            labels[z % 16, :] = 1
            return http.put(
                f"/api/v1/datasets/tall/annotations/race/slices/{z}",
                body=labels.tobytes(),
                headers={"Content-Type": "application/octet-stream"},
            ).status

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(save, range(200)))
        row = http.get("/api/v1/datasets/tall/annotations/race").json()
    failed = [z for z, status in enumerate(statuses) if status != 200]
    assert failed == [], f"{len(failed)} failed saves: {failed[:10]}"
    assert row["slices"] == list(range(200))
    folder = root / "annotations" / "tall" / "race"
    assert not [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".part"))]
