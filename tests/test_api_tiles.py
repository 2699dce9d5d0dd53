"""API: PNG tiles of every layer along every axis and zoom level, and the voxel under the cursor."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from webui_fixtures import DEMO_DATASET, Http, config_for, make_demo_folder, png_pixels, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_demo_folder(tmp_path_factory.mktemp("tiles") / "data")
    big = np.random.default_rng(1).integers(0, 65535, size=(3, 1100, 1300), dtype=np.uint16)
    (root / "EM" / "big").mkdir()
    tifffile.imwrite(root / "EM" / "big" / "big.tif", big, photometric="minisblack")
    labels = np.zeros((3, 1100, 1300), dtype=np.uint8)
    labels[:, 100:200, 300:700] = 255  # a 0/255 mask: shown as class 1
    seg = root / "segmentations" / "big" / "mask"
    seg.mkdir(parents=True)
    tifffile.imwrite(seg / "labels.tif", labels, photometric="minisblack")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        yield Http(server.url), root, big, labels


def volume(root, relative):
    return tifffile.imread(root / relative)


def test_raw_tile_is_the_slice(site):
    http, root, _, _ = site
    raw = volume(root, f"EM/{DEMO_DATASET}/raw/{DEMO_DATASET}.tif")
    reply = http.get(f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/3/0/0/0.png")
    assert reply.status == 200 and reply.headers["Content-Type"] == "image/png"
    assert "ETag" in reply.headers and "no-cache" in reply.headers["Cache-Control"]
    np.testing.assert_array_equal(png_pixels(reply.body), raw[3])
    again = http.get(
        f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/3/0/0/0.png",
        headers={"If-None-Match": reply.headers["ETag"]},
    )
    assert again.status == 304 and again.body == b""


def test_orthogonal_planes_and_ground_truth(site):
    http, root, _, _ = site
    raw = volume(root, f"EM/{DEMO_DATASET}/raw/{DEMO_DATASET}.tif")
    xz = png_pixels(http.get(f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/y/100/0/0/0.png").body)
    np.testing.assert_array_equal(xz, raw[:, 100, :])
    yz = png_pixels(http.get(f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/x/7/0/0/0.png").body)
    np.testing.assert_array_equal(yz, raw[:, :, 7])
    truth = volume(root, f"EM/{DEMO_DATASET}/labels/labels.tif")
    tile = png_pixels(
        http.get(f"/api/v1/datasets/{DEMO_DATASET}/tiles/ground_truth/z/1/0/0/0.png").body
    )
    expected = (truth[1] == 255).astype(np.uint8) if set(np.unique(truth)) <= {0, 255} else truth[1]
    np.testing.assert_array_equal(tile, expected)


def test_pyramid_levels_and_edge_tiles_of_a_large_uint16_slice(site):
    http, _, big, labels = site
    doc = http.get("/api/v1/datasets/big").json()
    assert [level["rows"] for level in doc["pyramid"]["z"]] == [3, 2, 1]
    edge = png_pixels(http.get("/api/v1/datasets/big/tiles/raw/z/1/0/2/2.png").body)
    assert edge.shape == (1100 - 1024, 1300 - 1024) and edge.dtype == np.uint8
    coarse = png_pixels(http.get("/api/v1/datasets/big/tiles/raw/z/1/2/0/0.png").body)
    assert coarse.shape == (275, 325)
    # uint16 is windowed to display levels: brighter stored values never come out darker
    source = big[1, ::4, ::4].astype(np.int64)
    order = np.argsort(source.ravel())
    assert np.all(np.diff(coarse.ravel()[order].astype(int)) >= 0)
    segmentation = http.get("/api/v1/datasets/big/segmentations/mask").json()
    assert segmentation["location"].startswith("segmentations/big/mask")
    assert [layer["kind"] for layer in doc["layers"]] == ["raw", "segmentation"]
    mask = png_pixels(
        http.get("/api/v1/datasets/big/tiles/segmentation/z/0/0/0/0.png?name=mask").body
    )
    np.testing.assert_array_equal(mask, (labels[0, :512, :512] == 255).astype(np.uint8))


@pytest.mark.parametrize(
    "path, status, field",
    [
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/bogus/z/0/0/0/0.png", 400, "kind"),
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/q/0/0/0/0.png", 400, "axis"),
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/9/0/0/0.png", 404, "index"),
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/0/3/0/0.png", 404, "level"),
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/raw/z/0/0/1/0.png", 404, "tile"),
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/segmentation/z/0/0/0/0.png", 400, "name"),
        (f"/api/v1/datasets/{DEMO_DATASET}/tiles/segmentation/z/0/0/0/0.png?name=nope", 404, None),
        ("/api/v1/datasets/nope/tiles/raw/z/0/0/0/0.png", 404, None),
    ],
)
def test_bad_tile_requests(site, path, status, field):
    http = site[0]
    reply = http.get(path)
    assert reply.status == status
    assert reply.json()["field"] == field


def test_voxel_reads_raw_and_label_values(site):
    http, root, _, _ = site
    raw = volume(root, f"EM/{DEMO_DATASET}/raw/{DEMO_DATASET}.tif")
    reply = http.get(f"/api/v1/datasets/{DEMO_DATASET}/voxel?z=2&y=40&x=41&layers=ground_truth")
    assert reply.status == 200
    doc = reply.json()
    assert doc["value"] == int(raw[2, 40, 41]) and doc["labels"]["ground_truth"] in (0, 1)
    big = http.get("/api/v1/datasets/big/voxel?z=0&y=150&x=400&layers=segmentation:mask").json()
    assert big["labels"] == {"segmentation:mask": 1}
    assert http.get(f"/api/v1/datasets/{DEMO_DATASET}/voxel?z=5&y=0&x=0").json()["field"] == "z"
    assert http.get(f"/api/v1/datasets/{DEMO_DATASET}/voxel?z=0&y=0").json()["field"] == "x"
    bad_layer = http.get(f"/api/v1/datasets/{DEMO_DATASET}/voxel?z=0&y=0&x=0&layers=raw")
    assert bad_layer.status == 400 and bad_layer.json()["field"] == "layers"
