"""N5 datasets and pyramids read through the reader contract, and the N5 block format itself."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from biosegment.errors import VolumeError
from biosegment.volumes import detect_file_type, open_volume, probe_volume
from biosegment.volumes.n5_format import N5Dataset, write_attributes, write_n5_dataset


def volume(shape=(5, 30, 41), dtype="uint16", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


@pytest.mark.parametrize(
    "compression",
    [
        {"type": "raw"},
        {"type": "gzip"},
        {"type": "bzip2"},
        {"type": "xz"},
        {"type": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
        {"type": "zstd", "level": 3},
    ],
)
def test_dataset_round_trips_through_every_codec(tmp_path, compression):
    data = volume()
    container = tmp_path / "sample.n5"
    write_attributes(container, {"n5": "4.0.0"})
    write_n5_dataset(
        container / "raw",
        data,
        block_size=(2, 16, 16),
        compression=compression,
        attributes={"resolution": [4.0, 4.0, 40.0]},
    )  # x y z, nm
    assert detect_file_type(container) == "n5"
    info = probe_volume(container)
    assert (info.file_type, info.key, info.shape, info.dtype) == ("n5", "raw", data.shape, "uint16")
    assert info.voxel_size == (40.0, 4.0, 4.0)
    with open_volume(container) as reader:
        assert reader.chunks == (2, 16, 16)
        np.testing.assert_array_equal(reader.read_block(0, 5), data)
        np.testing.assert_array_equal(reader.read_slice(3), data[3])
        np.testing.assert_array_equal(
            reader.read_block(1, 4, slice(7, 29), slice(3, 40, 4)), data[1:4, 7:29, 3:40:4]
        )


def test_block_files_follow_the_n5_layout(tmp_path):
    """Block (z=0, y=1, x=2) lives at x/y/z with a big-endian header of its own size."""
    data = np.arange(3 * 20 * 40, dtype=np.uint16).reshape(3, 20, 40)
    write_n5_dataset(tmp_path / "d", data, block_size=(3, 16, 16), compression={"type": "gzip"})
    attributes = json.loads((tmp_path / "d" / "attributes.json").read_text())
    assert attributes["dimensions"] == [40, 20, 3] and attributes["blockSize"] == [16, 16, 3]
    raw = (tmp_path / "d" / "2" / "1" / "0").read_bytes()
    mode, ndim, *sizes = struct.unpack(">HHIII", raw[:16])
    assert (mode, ndim, sizes) == (0, 3, [8, 4, 3])  # the edge block is cut to the volume
    samples = np.frombuffer(gzip.decompress(raw[16:]), dtype=">u2").reshape(3, 4, 8)
    np.testing.assert_array_equal(samples, data[:, 16:20, 32:40])


def test_missing_blocks_read_as_zeros_and_damage_is_named(tmp_path):
    data = volume(shape=(2, 32, 32), dtype="uint8")
    write_n5_dataset(tmp_path / "d.n5", data, block_size=(1, 16, 16))
    (tmp_path / "d.n5" / "1" / "1" / "1").unlink()
    (tmp_path / "d.n5" / "0" / "0" / "1").write_bytes(b"\0\0\0\2" + bytes(8))
    (tmp_path / "d.n5" / "1" / "0" / "1").write_bytes(b"\0\0\0\3garbage")
    dataset = N5Dataset(tmp_path / "d.n5")
    assert not dataset[1, 16:, 16:].any()
    np.testing.assert_array_equal(dataset[0], data[0])
    with open_volume(tmp_path / "d.n5") as reader:
        with pytest.raises(
            VolumeError,
            match=r"d\.n5/0/0/1: block 0/0/1: N5 block .* does not "
            "fit",
        ):
            reader.read_slice(1)
        with pytest.raises(VolumeError, match=r"1/0/1: block 1/0/1: truncated N5 block header"):
            reader.read_block(1, 2, slice(0, 16), slice(16, 32))


def test_bigdataviewer_style_pyramid_exposes_levels(tmp_path):
    data = volume(shape=(4, 64, 48), dtype="uint8")
    container = tmp_path / "pyramid.n5"
    write_attributes(
        container,
        {
            "n5": "4.0.0",
            "scales": [[1, 1, 1], [2, 2, 1], [4, 4, 1]],
            "pixelResolution": {"dimensions": [5, 5, 30], "unit": "nm"},
        },
    )
    for level in range(3):
        step = 2**level
        write_n5_dataset(container / f"s{level}", data[:, ::step, ::step], block_size=(2, 32, 32))
    with open_volume(container) as reader:
        assert reader.voxel_size == (30.0, 5.0, 5.0)
        assert [level.factors for level in reader.levels] == [
            (1.0, 1.0, 1.0),
            (1.0, 2.0, 2.0),
            (1.0, 4.0, 4.0),
        ]
        np.testing.assert_array_equal(reader.level(2).read_slice(1), data[1, ::4, ::4])
        assert reader.level(1).voxel_size == (30.0, 10.0, 10.0)


def test_bad_n5_metadata_names_the_file(tmp_path):
    write_attributes(
        tmp_path / "bad.n5" / "d",
        {
            "dimensions": [4, 4],
            "blockSize": [2, 2],
            "dataType": "uint8",
            "compression": {"type": "lz4"},
        },
    )
    with pytest.raises(
        VolumeError,
        match=r"attributes\.json: compression: N5 compression "
        "'lz4' is not supported",
    ):
        probe_volume(tmp_path / "bad.n5")
    write_attributes(
        tmp_path / "odd.n5" / "d", {"dimensions": [4, 4], "blockSize": [2, 2], "dataType": "object"}
    )
    with pytest.raises(VolumeError, match=r"dataType: N5 data type 'object' is not supported"):
        probe_volume(tmp_path / "odd.n5")
