"""The catalog registers OME-Zarr, Zarr, N5, HDF5 and MRC datasets, HDF5 keys from
setup.json, and segmentations written as OME-Zarr."""

from __future__ import annotations

import json

import h5py
import mrcfile
import numpy as np
import zarr

from biosegment.catalog import open_catalog, refresh
from biosegment.paths import resolve_inside
from biosegment.volumes import open_volume
from biosegment.volumes.n5_format import write_attributes, write_n5_dataset
from biosegment.volumes.ome_zarr_writer import write_ome_zarr


def stack(shape=(3, 16, 24), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def test_every_container_format_in_em_is_a_dataset(tmp_path):
    em = tmp_path / "EM"
    write_ome_zarr(em / "cells.ome.zarr", stack(), voxel_size=(30, 4, 4), downsampling="mean")
    zarr.open_array(str(em / "plain.zarr"), mode="w", shape=(2, 8, 8), dtype="uint16")
    write_attributes(em / "bdv.n5", {"n5": "4.0.0"})
    write_n5_dataset(em / "bdv.n5" / "raw", stack((2, 8, 8)), block_size=(1, 8, 8))
    with h5py.File(em.joinpath("cremi.h5"), "w") as handle:
        handle.create_dataset("volumes/raw", data=stack((4, 12, 12)))
    with mrcfile.new(em / "tomo.mrc") as handle:
        handle.set_data(np.zeros((5, 10, 10), np.float32))
        handle.voxel_size = 10.0
    (em / "in_a_folder" / "raw").mkdir(parents=True)
    with h5py.File(em / "in_a_folder" / "raw" / "data.hdf5", "w") as handle:
        handle.create_dataset("data", data=stack((2, 6, 6)))
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        rows = {d["name"]: d for d in catalog.datasets()}
    expected = {
        "cells": ("EM/cells.ome.zarr", "omezarr", [3, 16, 24], "uint8"),
        "plain": ("EM/plain.zarr", "zarr", [2, 8, 8], "uint16"),
        # raw/ inside a dataset holds its images, in a container as in a folder
        "bdv": ("EM/bdv.n5/raw", "n5", [2, 8, 8], "uint8"),
        "cremi": ("EM/cremi.h5", "hdf5", [4, 12, 12], "uint8"),
        "tomo": ("EM/tomo.mrc", "mrc", [5, 10, 10], "float32"),
        "in_a_folder": ("EM/in_a_folder/raw/data.hdf5", "hdf5", [2, 6, 6], "uint8"),
    }
    assert set(rows) == set(expected)
    for name, (location, file_type, shape, dtype) in expected.items():
        row = rows[name]
        assert (row["location"], row["file_type"], row["shape"], row["dtype"], row["state"]) == (
            location,
            file_type,
            shape,
            dtype,
            "ok",
        ), row
    assert rows["cells"]["voxel_size"] == [30.0, 4.0, 4.0]
    assert rows["tomo"]["voxel_size"] == [1.0, 1.0, 1.0]


def test_setup_json_key_names_the_hdf5_dataset(tmp_path):
    folder = tmp_path / "EM" / "sample"
    folder.mkdir(parents=True)
    raw, clefts = stack(seed=1), stack(seed=2)
    with h5py.File(folder / "sample_A.h5", "w") as handle:
        handle.create_dataset("volumes/raw", data=raw)
        handle.create_dataset("volumes/labels/clefts", data=clefts)
    setup = {
        "datasets": [
            {
                "title": "sample",
                "location": "EM/sample/sample_A.h5",
                "file_type": "hdf5",
                "key": "volumes/labels/clefts",
            }
        ]
    }
    (tmp_path / "setup.json").write_text(json.dumps(setup))
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        row = catalog.dataset("sample")
        assert (row["location"], row["state"]) == (
            "EM/sample/sample_A.h5/volumes/labels/clefts",
            "ok",
        ), row
        # Jobs and the viewer open a dataset from its location and file type alone.
        with open_volume(resolve_inside(tmp_path, row["location"]), row["file_type"]) as reader:
            np.testing.assert_array_equal(reader.read_block(0, 3), clefts)
        first = row["fingerprint"]
        with h5py.File(folder / "sample_A.h5", "a") as handle:
            handle["volumes/labels/clefts"][0] = 0
        refresh(catalog, tmp_path)
        assert catalog.dataset("sample")["fingerprint"] != first


def test_bad_key_in_setup_json_is_reported_with_its_place(tmp_path):
    (tmp_path / "EM").mkdir()
    with h5py.File(tmp_path / "EM" / "a.h5", "w") as handle:
        handle.create_dataset("raw", data=stack())
    setup = {"datasets": [{"title": "a", "location": "EM/a.h5", "key": "../../etc"}]}
    (tmp_path / "setup.json").write_text(json.dumps(setup))
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        text = json.dumps(catalog.problems())
        assert "datasets[0].key" in text and "must not contain '..'" in text
        setup = {"datasets": [{"title": "b", "location": "EM/a.h5", "key": "missing"}]}
        (tmp_path / "setup.json").write_text(json.dumps(setup))
        refresh(catalog, tmp_path)
        text = json.dumps(catalog.problems())
        assert "datasets[0]" in text and "no dataset 'missing' in the file" in text
        assert catalog.dataset("b")["state"] == "error"


def test_segmentation_written_as_ome_zarr_is_registered_and_readable(tmp_path):
    tifffile_free = stack((3, 16, 24))
    (tmp_path / "EM").mkdir()
    write_ome_zarr(tmp_path / "EM" / "cells.zarr", tifffile_free)
    folder = tmp_path / "segmentations" / "cells" / "unet run"
    write_ome_zarr(
        folder / "labels.ome.zarr",
        (tifffile_free > 100).astype(np.uint8),
        classes=[{"id": 0, "name": "background"}, {"id": 1, "name": "mito"}],
    )
    (folder / "segmentation.json").write_text(json.dumps({"model": "unet"}))
    with open_catalog(tmp_path) as catalog:
        refresh(catalog, tmp_path)
        row = catalog.segmentation("cells", "unet run")
    assert row["location"] == "segmentations/cells/unet run/labels.ome.zarr"
    assert row["state"] == "ok" and row["model"] == "unet"
