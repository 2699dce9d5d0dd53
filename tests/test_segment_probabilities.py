"""Class probabilities on request: a (c, z, y, x) OME-Zarr image with named channels, equal to
what the engine computes, in OME-Zarr 0.5 or (by a setting) 0.4, validated by ome-zarr-models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from biosegment.config import config_from_mapping
from biosegment.errors import InputError
from biosegment.tasks import JobService
from biosegment.volumes import open_volume
from biosegment.volumes.ome_zarr_channels import ChannelZarrWriter
from job_fixtures import DEMO_DATASET, TINY_MODEL, make_folder
from test_jobs_ome_zarr_output import run_job

NAMES = ["background", "membrane"]


def validated_image(path, version):
    """Validate the store with ome-zarr-models, an implementation independent of ours."""
    import pydantic_zarr.v2
    import pydantic_zarr.v3
    from ome_zarr_models.v04.image import Image as Image04
    from ome_zarr_models.v05.image import Image as Image05

    spec = pydantic_zarr.v2 if version == "0.4" else pydantic_zarr.v3
    model = Image04 if version == "0.4" else Image05
    # ome-zarr-models 1.6 leaves these forward references unresolved under pydantic 2.14.
    model.model_rebuild(_types_namespace={"ArraySpec": spec.ArraySpec, "GroupSpec": spec.GroupSpec})
    return model.from_zarr(zarr.open_group(str(path), mode="r"))


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_channel_image_validates_and_its_levels_average(tmp_path, version):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (2, 5, 1030, 600), dtype=np.uint8)
    path = tmp_path / "probabilities.ome.zarr"
    with ChannelZarrWriter(
        path,
        data.shape,
        channel_names=NAMES,
        colors=["#000000", "#ff4040"],
        voxel_size=(30.0, 4.0, 4.0),
        version=version,
        chunks=(2, 512, 512),
    ) as writer:
        writer.write_block(0, data[:, :3])
        writer.write_block(3, data[:, 3:])
    model = validated_image(path, version)
    attributes = model.attributes if version == "0.4" else model.attributes.ome
    multiscale = attributes.multiscales[0]
    assert [(a.name, a.type) for a in multiscale.axes] == [
        ("c", "channel"),
        ("z", "space"),
        ("y", "space"),
        ("x", "space"),
    ]
    scales = [list(d.coordinateTransformations[0].scale) for d in multiscale.datasets]
    assert scales == [[1.0, 30.0, 4.0, 4.0], [1.0, 30.0, 8.0, 8.0], [1.0, 30.0, 16.0, 16.0]]
    group = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(group["0"][...], data)
    level1 = group["1"][...]
    assert level1.shape == (2, 5, 515, 300)
    expected = data[:, :, :2, :2].astype(np.float32).mean(axis=(2, 3))
    np.testing.assert_array_equal(level1[:, :, 0, 0], np.rint(expected).astype(np.uint8))
    omero = (group.attrs if version == "0.4" else group.attrs["ome"])["omero"]
    assert [c["label"] for c in omero["channels"]] == NAMES
    assert omero["channels"][1]["color"] == "FF4040"


def test_an_unfinished_channel_image_leaves_the_old_one(tmp_path):
    path = tmp_path / "probabilities.ome.zarr"
    old = np.full((2, 2, 8, 8), 7, np.uint8)
    with ChannelZarrWriter(path, old.shape, channel_names=NAMES) as writer:
        writer.write_block(0, old)
    writer = ChannelZarrWriter(path, old.shape, channel_names=NAMES)
    writer.write_block(0, old[:, :1] + 1)
    with pytest.raises(ValueError, match="only 1 of 2 slices"):
        writer.commit()
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["0"][...], old)
    with pytest.raises(ValueError, match="uint8"):
        ChannelZarrWriter(tmp_path / "x.ome.zarr", old.shape, channel_names=NAMES).write_block(
            0, old.astype(np.float32)
        )


def engine_probabilities(root) -> tuple[np.ndarray, np.ndarray]:
    from biosegment.engine import load_model
    from biosegment.engine.inference import InferenceSettings, segment_block

    model, _ = load_model(root / "models" / TINY_MODEL)
    with open_volume(root / "EM" / DEMO_DATASET / "raw") as volume:
        result = segment_block(
            volume,
            model,
            0,
            volume.shape[0],
            settings=InferenceSettings(device="cpu"),
            probabilities=True,
        )
    assert result.probabilities is not None
    return result.labels, result.probabilities


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_segment_job_writes_the_probabilities_it_was_asked_for(tmp_path, version):
    root, config = make_folder(tmp_path, extra={"engine": {"ome_zarr_version": version}})
    row = run_job(root, config, block_z=2, probabilities="ome-zarr", output_format="ome-zarr")
    assert row["state"] == "succeeded", row
    output = root / "segmentations" / DEMO_DATASET / TINY_MODEL
    assert sorted(p.name for p in output.iterdir()) == [
        "labels.ome.zarr",
        "probabilities.ome.zarr",
        "segmentation.json",
    ]
    labels, probabilities = engine_probabilities(root)
    stored = zarr.open_group(str(output / "probabilities.ome.zarr"), mode="r")["0"][...]
    assert stored.shape == probabilities.shape and stored.dtype == np.uint8
    # blocks of 2 slices give the same windows as one block of all: the values are the engine's
    np.testing.assert_array_equal(stored, probabilities)
    assert validated_image(output / "probabilities.ome.zarr", version) is not None
    with open_volume(output / "labels.ome.zarr") as reader:
        np.testing.assert_array_equal(reader.read_block(0, labels.shape[0]), labels)
    card = json.loads((output / "segmentation.json").read_text())
    assert card["probabilities"] == "probabilities.ome.zarr"
    marker = ".zgroup" if version == "0.4" else "zarr.json"
    assert (output / "labels.ome.zarr" / marker).is_file()


def test_without_the_request_no_probabilities_are_written_and_bad_values_are_refused(tmp_path):
    root, config = make_folder(tmp_path)
    row = run_job(root, config, probabilities="none")
    assert row["state"] == "succeeded", row
    output = root / "segmentations" / DEMO_DATASET / TINY_MODEL
    assert sorted(p.name for p in output.iterdir()) == ["labels.tif", "segmentation.json"]
    service = JobService(config)
    try:
        with pytest.raises(InputError) as caught:
            service.submit_segment(DEMO_DATASET, TINY_MODEL, probabilities="tiff")
        assert caught.value.where == "probabilities"
    finally:
        service.close()
    with pytest.raises(InputError) as caught:
        config_from_mapping({"engine": {"ome_zarr_version": "0.3"}})
    assert caught.value.where == "engine.ome_zarr_version"
