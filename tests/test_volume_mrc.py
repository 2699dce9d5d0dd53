"""MRC files (cryo-EM maps and tomograms) read through the reader contract."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from biosegment.errors import VolumeError
from biosegment.volumes import detect_file_type, open_volume, probe_volume
from biosegment.volumes.mrc_volume import IMOD_STAMP


def write_mrc(path, data, voxel_size_angstrom=(20.0, 20.0, 50.0)):
    with mrcfile.new(path, overwrite=True) as handle:
        handle.set_data(data)
        handle.voxel_size = voxel_size_angstrom  # x, y, z
    return path


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_volume_round_trips_with_voxel_size_in_nm(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.random((4, 24, 32)) * 1000).astype(dtype)
    path = write_mrc(tmp_path / "tomogram.rec", data)
    assert detect_file_type(path) == "mrc"
    info = probe_volume(path)
    assert (info.file_type, info.shape, info.dtype) == ("mrc", (4, 24, 32), dtype)
    assert info.voxel_size == pytest.approx((5.0, 2.0, 2.0))
    with open_volume(path) as reader:
        assert reader.is_memory_mapped
        np.testing.assert_array_equal(reader.read_block(0, 4), data)
        np.testing.assert_array_equal(
            reader.read_block(1, 3, slice(4, 20), slice(0, 32, 5)), data[1:3, 4:20, 0:32:5]
        )


def test_signed_types_are_shifted_into_unsigned_keeping_order(tmp_path):
    data16 = np.array([[[-32768, -1, 0, 1, 32767]]], dtype=np.int16)
    with open_volume(write_mrc(tmp_path / "int16.mrc", data16)) as reader:
        assert reader.dtype == np.uint16
        np.testing.assert_array_equal(
            reader.read_slice(0), (data16[0].astype(np.int32) + 32768).astype(np.uint16)
        )
    data8 = np.array([[[-128, -1, 0, 1, 127]]], dtype=np.int8)
    with open_volume(write_mrc(tmp_path / "int8.mrc", data8)) as reader:
        assert reader.dtype == np.uint8
        np.testing.assert_array_equal(reader.read_slice(0), [[0, 127, 128, 129, 255]])


def test_imod_unsigned_bytes_are_read_as_they_are(tmp_path):
    stored = np.array([[[0, 100, 200, 255]], [[1, 2, 3, 4]]], dtype=np.uint8)
    path = tmp_path / "imod.mrc"
    with mrcfile.new(path) as handle:
        handle.set_data(stored.view(np.int8))  # mode 0
        extra = bytearray(handle.header.extra2.tobytes())
        extra[40:44] = np.int32(IMOD_STAMP).tobytes()
        extra[44:48] = np.int32(0).tobytes()  # flags: bytes are unsigned
        handle.header.extra2 = bytes(extra)
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 2), stored)


def test_single_image_has_no_voxel_size_and_damage_is_named(tmp_path):
    image = np.ones((1, 6, 8), np.float32)
    info = probe_volume(write_mrc(tmp_path / "image.mrc", image[0]))
    assert info.shape == (1, 6, 8) and info.voxel_size is None
    complex_path = tmp_path / "complex.mrc"
    with mrcfile.new(complex_path) as handle:
        handle.set_data(np.zeros((2, 4, 4), np.complex64))
    with pytest.raises(
        VolumeError,
        match=r"complex\.mrc: header mode: MRC pixel type complex "
        "float32 is not supported",
    ):
        probe_volume(complex_path)
    (tmp_path / "short.mrc").write_bytes(b"\0" * 100)
    with pytest.raises(VolumeError, match=r"short\.mrc: reading the MRC header failed"):
        probe_volume(tmp_path / "short.mrc")
