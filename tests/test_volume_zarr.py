"""OME-Zarr (0.4 and 0.5) and plain Zarr volumes read through the reader contract.

Stores here are written with zarr-python directly and metadata spelled out by hand, so the
reader is checked against the format, not against BioSegment's own writer.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from biosegment.errors import VolumeError
from biosegment.volumes import detect_file_type, open_volume, probe_volume


def volume(shape=(6, 40, 56), dtype="uint8", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


def write_ome(
    path,
    data,
    *,
    version,
    axes="zyx",
    scale0=(30.0, 4.0, 4.0),
    unit="nanometer",
    chunks=(2, 16, 16),
):
    """An OME-Zarr image with two levels (level 1 halves y and x), written by hand."""
    zarr_format = 3 if version == "0.5" else 2
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    lead = (1,) * (len(axes) - 3)
    level1 = data[:, ::2, ::2]
    for name, array in (("s0", data), ("s1", level1)):
        stored = group.create_array(
            name,
            shape=lead + array.shape,
            dtype=array.dtype,
            chunks=lead + tuple(min(c, s) for c, s in zip(chunks, array.shape)),
        )
        stored[...] = array.reshape(lead + array.shape)
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    axes_meta = [
        {"name": a, "type": kinds[a], **({"unit": unit} if kinds[a] == "space" else {})}
        for a in axes
    ]
    pad = [1.0] * (len(axes) - 3)
    multiscale = {
        "axes": axes_meta,
        "datasets": [
            {
                "path": "s0",
                "coordinateTransformations": [{"type": "scale", "scale": pad + list(scale0)}],
            },
            {
                "path": "s1",
                "coordinateTransformations": [
                    {"type": "scale", "scale": pad + [scale0[0], scale0[1] * 2, scale0[2] * 2]},
                    {"type": "translation", "translation": pad + [0.0, 2.0, 2.0]},
                ],
            },
        ],
        "name": "cells",
    }
    if version == "0.4":
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_ome_zarr_reads_back_identically_with_its_pyramid(tmp_path, version, dtype):
    data = volume(dtype=dtype)
    path = write_ome(tmp_path / "image.ome.zarr", data, version=version)
    assert detect_file_type(path) == "omezarr"
    info = probe_volume(path)
    assert (info.file_type, info.shape, info.dtype) == ("omezarr", (6, 40, 56), dtype)
    assert info.voxel_size == (30.0, 4.0, 4.0)
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 6), data)
        np.testing.assert_array_equal(reader.read_slice(4), data[4])
        np.testing.assert_array_equal(
            reader.read_block(1, 5, slice(3, 33), slice(10, 50, 3)), data[1:5, 3:33, 10:50:3]
        )
        assert reader.chunks == (2, 16, 16)
        assert [level.shape for level in reader.levels] == [(6, 40, 56), (6, 20, 28)]
        assert reader.levels[1].factors == (1.0, 2.0, 2.0)
        coarse = reader.level(1)
        assert coarse.voxel_size == (30.0, 8.0, 8.0)
        np.testing.assert_array_equal(coarse.read_slice(2), data[2, ::2, ::2])
        with pytest.raises(IndexError):
            reader.level(2)


def test_ome_zarr_with_time_and_channel_axes_and_micrometres(tmp_path):
    data = volume(shape=(3, 20, 24))
    path = write_ome(
        tmp_path / "tczyx.zarr",
        data,
        version="0.5",
        axes="tczyx",
        scale0=(0.05, 0.004, 0.004),
        unit="micrometer",
    )
    info = probe_volume(path)
    assert info.shape == (3, 20, 24)
    assert info.voxel_size == pytest.approx((50.0, 4.0, 4.0))
    with open_volume(path, "omezarr") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 3), data)


def test_two_dimensional_ome_zarr_is_one_slice(tmp_path):
    plane = volume(shape=(1, 30, 20))[0]
    group = zarr.open_group(str(tmp_path / "plane.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=plane.shape, dtype=plane.dtype, chunks=(16, 16))[...] = plane
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}
            ],
        }
    ]
    with open_volume(tmp_path / "plane.zarr") as reader:
        assert reader.shape == (1, 30, 20) and reader.voxel_size is None
        np.testing.assert_array_equal(reader.read_slice(0), plane)
        np.testing.assert_array_equal(reader.read_block(0, 1, slice(2, 9)), plane[None, 2:9])


def test_bioformats2raw_layout_reads_its_first_image(tmp_path):
    root = zarr.open_group(str(tmp_path / "converted.zarr"), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    data = volume(shape=(2, 16, 16))
    write_ome(tmp_path / "converted.zarr" / "0", data, version="0.4")
    info = probe_volume(tmp_path / "converted.zarr")
    assert info.file_type == "omezarr" and info.key == "0"
    with open_volume(tmp_path / "converted.zarr") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 2), data)


def test_plain_zarr_arrays_v2_big_endian_and_v3(tmp_path):
    data = volume(dtype="uint16")
    v2 = zarr.open_array(
        str(tmp_path / "v2.zarr"),
        mode="w",
        zarr_format=2,
        shape=data.shape,
        chunks=(3, 20, 20),
        dtype=">u2",
    )
    v2[...] = data
    v2.attrs["resolution"] = [40, 4, 4]
    v3 = zarr.open_array(
        str(tmp_path / "v3.zarr"),
        mode="w",
        zarr_format=3,
        shape=data.shape,
        chunks=(3, 20, 20),
        dtype="uint16",
    )
    v3[...] = data
    for name, voxel_size in (("v2.zarr", (40.0, 4.0, 4.0)), ("v3.zarr", None)):
        assert detect_file_type(tmp_path / name) == "zarr"
        with open_volume(tmp_path / name) as reader:
            assert reader.dtype == np.uint16 and reader.voxel_size == voxel_size
            assert reader.levels[0].shape == data.shape and len(reader.levels) == 1
            block = reader.read_block(2, 5)
            assert block.dtype.byteorder in ("=", "|") or block.dtype.isnative
            np.testing.assert_array_equal(block, data[2:5])


def test_zarr_group_arrays_are_chosen_by_key_or_convention(tmp_path):
    group = zarr.open_group(str(tmp_path / "sample.zarr"), mode="w", zarr_format=3)
    raw, labels = volume(seed=1), volume(seed=2)
    group.create_array("volumes/raw", shape=raw.shape, dtype="uint8", chunks=(2, 20, 20))[...] = raw
    group.create_array("volumes/labels", shape=raw.shape, dtype="uint8", chunks=(2, 20, 20))[
        ...
    ] = labels
    info = probe_volume(tmp_path / "sample.zarr")
    assert info.key == "volumes/raw"  # the conventional name wins when no key is given
    with open_volume(tmp_path / "sample.zarr", key="volumes/labels") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 6), labels)
    # A location that continues into the store names the array as well.
    with open_volume(tmp_path / "sample.zarr" / "volumes" / "labels") as reader:
        np.testing.assert_array_equal(reader.read_slice(3), labels[3])
    other = zarr.open_group(str(tmp_path / "two.zarr"), mode="w", zarr_format=3)
    for name in ("a", "b"):
        other.create_array(name, shape=(2, 8, 8), dtype="uint8")
    with pytest.raises(VolumeError, match=r"two\.zarr: holds several arrays \(a, b\).*key"):
        probe_volume(tmp_path / "two.zarr")
    with pytest.raises(VolumeError, match=r"sample\.zarr: key: no array or group 'nothing'"):
        probe_volume(tmp_path / "sample.zarr", key="nothing")


def test_unwritten_chunks_read_as_fill_and_reads_touch_only_their_chunks(tmp_path):
    array = zarr.open_array(
        str(tmp_path / "sparse.zarr"),
        mode="w",
        zarr_format=3,
        shape=(8, 64, 64),
        chunks=(4, 32, 32),
        dtype="uint8",
        fill_value=0,
    )
    array[0:4, 0:32, 0:32] = 7
    array[4:8, 32:64, 32:64] = 9
    chunk_files = sorted(
        p for p in (tmp_path / "sparse.zarr").rglob("*") if p.is_file() and p.name != "zarr.json"
    )
    assert len(chunk_files) == 2  # nothing stored where nothing was written
    # Damage the second chunk: reads that do not cover it must not notice.
    chunk_files[-1].write_bytes(b"not zstd")
    with open_volume(tmp_path / "sparse.zarr") as reader:
        assert reader.read_block(0, 4).sum() == 7 * 4 * 32 * 32
        assert not reader.read_block(4, 8, slice(0, 32), slice(0, 64)).any()
        with pytest.raises(
            VolumeError,
            match=r"sparse\.zarr: slices 4-7: reading the volume "
            "failed",
        ):
            reader.read_block(4, 8)


def test_bad_ome_metadata_and_unsupported_images_name_file_and_key(tmp_path):
    data = volume(shape=(2, 8, 8))
    path = write_ome(tmp_path / "bad.zarr", data, version="0.4")
    group = zarr.open_group(str(path), mode="r+")
    attrs = group.attrs["multiscales"]
    attrs[0]["datasets"][1]["path"] = "gone"
    group.attrs["multiscales"] = attrs
    with pytest.raises(
        VolumeError,
        match=r"bad\.zarr: multiscales\[0\]\.datasets\[1\]: level "
        "array 'gone' is missing",
    ):
        probe_volume(path)
    attrs[0]["datasets"][1]["coordinateTransformations"] = [{"type": "scale", "scale": [1, 2]}]
    attrs[0]["datasets"][1]["path"] = "s1"
    group.attrs["multiscales"] = attrs
    with pytest.raises(
        VolumeError,
        match=r"datasets\[1\]\.coordinateTransformations\[0\]: "
        "scale must hold 3 finite numbers",
    ):
        probe_volume(path)
    colour = write_ome(tmp_path / "rgb.zarr", volume(shape=(2, 8, 8)), version="0.5", axes="czyx")
    zarr.open_group(str(colour), mode="r+").create_array("s2", shape=(3, 2, 8, 8), dtype="uint8")
    meta = zarr.open_group(str(colour), mode="r+")
    ome = meta.attrs["ome"]
    ome["multiscales"][0]["datasets"][0]["path"] = "s2"
    meta.attrs["ome"] = ome
    with pytest.raises(VolumeError, match=r"rgb\.zarr.*multichannel"):
        probe_volume(colour)
    ints = zarr.open_array(
        str(tmp_path / "int64.zarr"), mode="w", shape=(2, 4, 4), dtype="int64", zarr_format=3
    )
    with pytest.raises(VolumeError, match=r"int64\.zarr: pixel type int64 is not supported"):
        probe_volume(tmp_path / "int64.zarr")
    assert ints.shape == (2, 4, 4)
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(
        VolumeError,
        match=r"empty\.zarr: file type zarr needs a Zarr or N5 "
        "folder",
    ):
        probe_volume(tmp_path / "empty.zarr", "zarr")
