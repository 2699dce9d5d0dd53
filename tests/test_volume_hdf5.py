"""HDF5 datasets read through the reader contract: keys, conventions, chunks, calibration."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from biosegment.errors import VolumeError
from biosegment.volumes import detect_file_type, open_volume, probe_volume


def volume(shape=(5, 36, 44), dtype="uint8", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_dataset_round_trips_with_key_and_chunks(tmp_path, dtype):
    data = volume(dtype=dtype)
    path = tmp_path / "sample.h5"
    with h5py.File(path, "w") as handle:
        raw = handle.create_dataset(
            "volumes/raw", data=data, chunks=(1, 18, 22), compression="gzip"
        )
        raw.attrs["resolution"] = [40.0, 4.0, 4.0]  # CREMI: z y x in nm
        handle.create_dataset("volumes/labels/clefts", data=np.zeros((5, 36, 44), np.uint8))
    assert detect_file_type(path) == "hdf5"
    info = probe_volume(path, key="volumes/raw")
    assert (info.file_type, info.shape, info.dtype, info.key) == (
        "hdf5",
        data.shape,
        dtype,
        "volumes/raw",
    )
    assert info.voxel_size == (40.0, 4.0, 4.0)
    with open_volume(path, key="/volumes/raw/") as reader:
        assert reader.chunks == (1, 18, 22)
        np.testing.assert_array_equal(reader.read_block(0, 5), data)
        np.testing.assert_array_equal(reader.read_slice(2), data[2])
        np.testing.assert_array_equal(
            reader.read_block(1, 4, slice(5, 30), slice(None, None, 2)), data[1:4, 5:30, ::2]
        )
    # The conventional "volumes/raw" wins over the labels when no key is given.
    assert probe_volume(path).key == "volumes/raw"
    # A location that continues past the file name carries the key.
    with open_volume(path / "volumes" / "labels" / "clefts") as reader:
        assert reader.info.key == "volumes/labels/clefts" and not reader.read_slice(0).any()


def test_single_dataset_two_dimensional_and_ilastik_calibration(tmp_path):
    plane = volume(shape=(1, 20, 30), dtype="uint16")[0]
    with h5py.File(tmp_path / "plane.hdf5", "w") as handle:
        handle.create_dataset("image", data=plane)
    with open_volume(tmp_path / "plane.hdf5", "hdf5") as reader:
        assert reader.shape == (1, 20, 30) and reader.chunks is None
        np.testing.assert_array_equal(reader.read_slice(0), plane)
    data = volume(shape=(3, 8, 8))
    with h5py.File(tmp_path / "fiji.h5", "w") as handle:
        stack = handle.create_dataset("t0/channel0", data=data[np.newaxis])  # (1, z, y, x)
        stack.attrs["element_size_um"] = [0.03, 0.005, 0.005]
    info = probe_volume(tmp_path / "fiji.h5")
    assert info.shape == (3, 8, 8) and info.voxel_size == pytest.approx((30.0, 5.0, 5.0))
    with open_volume(tmp_path / "fiji.h5") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 3), data)


def test_ambiguous_missing_and_unsupported_datasets_name_file_and_key(tmp_path):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("first", data=np.zeros((2, 4, 4), np.uint8))
        handle.create_dataset("second", data=np.zeros((2, 4, 4), np.uint8))
        handle.create_dataset("rgb", data=np.zeros((3, 2, 4, 4), np.uint8))
        handle.create_dataset("counts", data=np.zeros((2, 4, 4), np.int64))
        handle.create_group("group")
    with pytest.raises(
        VolumeError,
        match=r"two\.h5: holds several datasets \(counts, first, "
        r"rgb, second\).*key",
    ):
        probe_volume(path)
    with pytest.raises(VolumeError, match=r"two\.h5: key: no dataset 'third' in the file"):
        probe_volume(path, key="third")
    with pytest.raises(VolumeError, match=r"two\.h5: key: 'group' is a group, not a dataset"):
        probe_volume(path, key="group")
    with pytest.raises(VolumeError, match=r"two\.h5: key rgb: .*multichannel"):
        probe_volume(path, key="rgb")
    with pytest.raises(
        VolumeError,
        match=r"two\.h5: key counts: pixel type int64 is not "
        "supported",
    ):
        probe_volume(path, key="counts")
    (tmp_path / "broken.h5").write_bytes(b"not really hdf5" * 10)
    with pytest.raises(VolumeError, match=r"broken\.h5: opening the HDF5 file failed"):
        probe_volume(tmp_path / "broken.h5")
    with pytest.raises(VolumeError, match=r"a tif3d volume holds one image; 'key'"):
        probe_volume(path, "tif3d", key="first")


def test_closing_the_reader_closes_the_file(tmp_path):
    path = tmp_path / "one.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("raw", data=volume(shape=(2, 8, 8)))
    reader = open_volume(path)
    reader.read_slice(0)
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read_slice(0)
    with h5py.File(path, "a") as handle:  # nothing holds the file any more
        handle["raw"][0] = 0
