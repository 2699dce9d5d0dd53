"""The viewer's tiles come from OME-Zarr, HDF5 (with a key) and MRC datasets as from TIFFs."""

from __future__ import annotations

import json

import h5py
import mrcfile
import numpy as np
import pytest

from biosegment.catalog import open_catalog, refresh
from biosegment.datafolder import init_data_folder
from biosegment.volumes.ome_zarr_writer import write_ome_zarr
from webui_fixtures import Http, config_for, png_pixels, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats") / "data"
    init_data_folder(root)
    rng = np.random.default_rng(4)
    volumes = {
        name: rng.integers(0, 255, (4, 600, 520), dtype=np.uint8)
        for name in ("cells", "cremi", "tomo")
    }
    write_ome_zarr(root / "EM" / "cells.ome.zarr", volumes["cells"], downsampling="mean")
    with h5py.File(root / "EM" / "cremi.h5", "w") as handle:
        handle.create_dataset("volumes/raw", data=volumes["cremi"], chunks=(1, 128, 128))
        handle.create_dataset("volumes/other", data=np.zeros((4, 600, 520), np.uint8))
    with mrcfile.new(root / "EM" / "tomo.mrc") as handle:
        handle.set_data(volumes["tomo"].view(np.int8))
    seg = root / "segmentations" / "cells" / "zarr run"
    labels = (volumes["cells"] > 128).astype(np.uint8)
    write_ome_zarr(
        seg / "labels.ome.zarr",
        labels,
        classes=[{"id": 0, "name": "bg"}, {"id": 1, "name": "bright"}],
    )
    setup = {"datasets": [{"title": "cremi", "location": "EM/cremi.h5", "key": "volumes/raw"}]}
    (root / "setup.json").write_text(json.dumps(setup))
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    with serve(config_for(root)) as server:
        yield Http(server.url), volumes, labels


def test_raw_tiles_of_container_datasets(site):
    http, volumes, _ = site
    for name in ("cells", "cremi"):
        reply = http.get(f"/api/v1/datasets/{name}/tiles/raw/z/2/0/0/0.png")
        assert reply.status == 200, reply.body
        np.testing.assert_array_equal(png_pixels(reply.body), volumes[name][2, :512, :512])
    # MRC stores signed bytes here: shown shifted into 0..255, order kept
    reply = http.get("/api/v1/datasets/tomo/tiles/raw/z/1/0/1/0.png")
    assert reply.status == 200
    shifted = (volumes["tomo"][1].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    np.testing.assert_array_equal(png_pixels(reply.body), shifted[512:, :512])


def test_zoomed_out_and_overlay_tiles_of_ome_zarr(site):
    http, volumes, labels = site
    reply = http.get("/api/v1/datasets/cells/tiles/raw/z/0/1/0/0.png")
    zoomed = png_pixels(reply.body)
    assert reply.status == 200 and zoomed.shape == (300, 260)
    # Served from the stored pyramid level (2x2 means), not by striding through level 0.
    pixels = volumes["cells"][0].astype(np.float64)
    means = np.rint(
        (pixels[0::2, 0::2] + pixels[1::2, 0::2] + pixels[0::2, 1::2] + pixels[1::2, 1::2]) / 4
    ).astype(np.uint8)
    np.testing.assert_array_equal(zoomed, means)
    reply = http.get("/api/v1/datasets/cells/tiles/segmentation/z/3/0/0/1.png?name=zarr+run")
    assert reply.status == 200, reply.body
    np.testing.assert_array_equal(png_pixels(reply.body), labels[3, :512, 512:])
