"""Segmentations written as OME-Zarr label images: readable by zarr, valid OME metadata,
a nearest-neighbour pyramid, calibrated axes, and never half a store at the final name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from biosegment.volumes import open_volume
from biosegment.volumes.ome_zarr_writer import OmeZarrWriter, pyramid_shapes, write_ome_zarr

CLASSES = [
    {"id": 0, "name": "background", "color": "#000000"},
    {"id": 1, "name": "mitochondrion", "color": "#00c0ff"},
    {"id": 2, "name": "membrane", "color": "#ff4040"},
]


def labels(shape=(10, 1100, 700)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 3, shape, dtype=np.uint8)


def validated_label_image(path, version):
    """Validate the store with ome-zarr-models, an implementation independent of ours."""
    import pydantic_zarr.v2
    import pydantic_zarr.v3
    from ome_zarr_models.v04.image import Image as Image04
    from ome_zarr_models.v04.image_label import ImageLabel as ImageLabel04
    from ome_zarr_models.v05.image import Image as Image05
    from ome_zarr_models.v05.image_label import ImageLabel as ImageLabel05

    spec = pydantic_zarr.v2 if version == "0.4" else pydantic_zarr.v3
    models = (Image04, ImageLabel04) if version == "0.4" else (Image05, ImageLabel05)
    for model in models:
        # ome-zarr-models 1.6 leaves these forward references unresolved under pydantic 2.14.
        model.model_rebuild(
            _types_namespace={"ArraySpec": spec.ArraySpec, "GroupSpec": spec.GroupSpec}
        )
    return models[1].from_zarr(zarr.open_group(str(path), mode="r"))


@pytest.mark.parametrize("version, marker", [("0.4", ".zgroup"), ("0.5", "zarr.json")])
def test_label_image_opens_with_zarr_and_its_metadata_validates(tmp_path, version, marker):
    data = labels()
    path = write_ome_zarr(
        tmp_path / "labels.ome.zarr",
        data,
        voxel_size=(30.0, 4.0, 4.0),
        classes=CLASSES,
        version=version,
    )
    assert (path / marker).is_file()
    group = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(group["0"][...], data)
    model = validated_label_image(path, version)
    if version == "0.4":
        label, multiscale = model.attributes.image_label, model.attributes.multiscales[0]
    else:
        label, multiscale = model.attributes.ome.image_label, model.attributes.ome.multiscales[0]
    assert [p.model_dump(by_alias=True)["class"] for p in label.properties] == [
        "background",
        "mitochondrion",
        "membrane",
    ]
    assert [tuple(c.rgba) for c in label.colors][:2] == [(0, 0, 0, 0), (0, 192, 255, 255)]
    assert [a.name for a in multiscale.axes] == ["z", "y", "x"]
    assert {a.unit for a in multiscale.axes} == {"nanometer"}
    scales = [list(d.coordinateTransformations[0].scale) for d in multiscale.datasets]
    assert scales == [[30.0, 4.0, 4.0], [30.0, 8.0, 8.0], [30.0, 16.0, 16.0]]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_round_trip_through_the_contract_with_a_nearest_pyramid(tmp_path, version):
    data = labels()
    path = write_ome_zarr(
        tmp_path / "seg.ome.zarr",
        data,
        voxel_size=(30.0, 4.0, 4.0),
        classes=CLASSES,
        version=version,
        chunks=(4, 256, 256),
    )
    with open_volume(path) as reader:
        assert reader.info.file_type == "omezarr" and reader.voxel_size == (30.0, 4.0, 4.0)
        np.testing.assert_array_equal(reader.read_block(0, 10), data)
        assert reader.chunks == (4, 256, 256)
        assert [lv.shape for lv in reader.levels] == pyramid_shapes(data.shape)
        assert [lv.shape for lv in reader.levels] == [
            (10, 1100, 700),
            (10, 550, 350),
            (10, 275, 175),
        ]
        for index in range(3):
            step = 2**index
            # every second voxel: class ids are never blended into new values
            np.testing.assert_array_equal(
                reader.level(index).read_block(0, 10), data[:, ::step, ::step]
            )


def test_raw_images_may_use_mean_downsampling(tmp_path):
    data = np.arange(2 * 1030 * 4, dtype=np.uint16).reshape(2, 1030, 4) % 1000
    path = write_ome_zarr(tmp_path / "raw.ome.zarr", data, downsampling="mean")
    with open_volume(path) as reader:
        level1 = reader.level(1).read_block(0, 2)
    padded = np.pad(data, ((0, 0), (0, 0), (0, 0)), mode="edge").astype(np.float64)
    expected = np.rint(
        (
            padded[:, 0::2, 0::2]
            + padded[:, 1::2, 0::2]
            + padded[:, 0::2, 1::2]
            + padded[:, 1::2, 1::2]
        )
        / 4
    )
    np.testing.assert_array_equal(level1, expected.astype(np.uint16))
    attributes = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attributes["ome"]["multiscales"][0]["type"] == "mean"


def test_nothing_appears_at_the_final_name_until_commit_and_abort_keeps_the_old_store(tmp_path):
    data = labels((5, 64, 64))
    destination = tmp_path / "seg" / "labels.ome.zarr"
    write_ome_zarr(destination, np.ones_like(data), classes=CLASSES)
    writer = OmeZarrWriter(destination, data.shape, classes=CLASSES, chunks=(2, 64, 64))
    assert writer.temp_path.name.startswith(".") and writer.temp_path.name.endswith(".part")
    writer.write_block(0, data[:3])
    with open_volume(destination) as reader:  # still the previous store
        assert reader.read_slice(0).min() == 1
    writer.abort()
    assert not writer.temp_path.exists()
    with OmeZarrWriter(destination, data.shape, classes=CLASSES) as writer:
        writer.write_block(0, data)
    assert sorted(p.name for p in destination.parent.iterdir()) == ["labels.ome.zarr"]
    with open_volume(destination) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 5), data)


def test_writer_refuses_disorder_missing_slices_and_values_that_do_not_fit(tmp_path):
    writer = OmeZarrWriter(tmp_path / "a.ome.zarr", (3, 8, 8))
    with pytest.raises(ValueError, match="expected slice 0, got 1"):
        writer.write_slice(1, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="values 0..300 do not fit"):
        writer.write_slice(0, np.array([[0, 300]] * 32).reshape(8, 8))
    writer.write_slice(0, np.zeros((8, 8), np.int64))
    with pytest.raises(ValueError, match="only 1 of 3 slices were written"):
        writer.commit()
    assert not (tmp_path / "a.ome.zarr").exists()
    assert list(tmp_path.iterdir()) == []
