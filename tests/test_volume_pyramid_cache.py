"""The pyramid cache that lets the viewer zoom out of large TIFF stacks quickly."""

from __future__ import annotations

import os

import numpy as np
import pytest

from biosegment.errors import CancelledError
from biosegment.volumes import open_volume, write_volume
from biosegment.volumes.pyramid_cache import (
    PyramidCache,
    build_pyramid,
    needs_pyramid,
    open_with_pyramid,
)


def stack(shape=(3, 2100, 1300)) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 255, shape, dtype=np.uint8)


def test_large_tiff_gets_cached_levels_that_match_2x2_means(tmp_path):
    data = stack()
    tiff = write_volume(tmp_path / "big.tif", data, compression=None, voxel_size=(30, 4, 4))
    cache = PyramidCache(tmp_path / "cache")
    with open_volume(tiff) as reader:
        assert needs_pyramid(reader)
        assert open_with_pyramid(reader, cache) is reader  # nothing built yet
        fractions = []
        store = build_pyramid(reader, cache, progress=fractions.append)
        assert fractions[-1] == 1.0 and store.name.endswith(".ome.zarr")
        assert build_pyramid(reader, cache) == store  # current: not rebuilt
    with open_with_pyramid(open_volume(tiff), cache) as reader:
        assert [lv.shape for lv in reader.levels] == [
            (3, 2100, 1300),
            (3, 1050, 650),
            (3, 525, 325),
            (3, 263, 163),
        ]
        assert [lv.factors for lv in reader.levels][1:] == [
            (1.0, 2.0, 2.0),
            (1.0, 4.0, 4.0),
            (1.0, 8.0, 8.0),
        ]
        np.testing.assert_array_equal(reader.read_slice(1), data[1])
        assert reader.level(0) is reader
        half = data.astype(np.float64)
        expected = np.rint(
            (half[:, 0::2, 0::2] + half[:, 1::2, 0::2] + half[:, 0::2, 1::2] + half[:, 1::2, 1::2])
            / 4
        ).astype(np.uint8)
        np.testing.assert_array_equal(reader.level(1).read_block(0, 3), expected)
        assert reader.level(1).voxel_size == (30.0, 8.0, 8.0)
        assert reader.level(3).read_slice(2).shape == (263, 163)


def test_rewritten_file_never_shows_an_old_pyramid(tmp_path):
    data = stack((2, 2100, 600))
    tiff = write_volume(tmp_path / "big.tif", data, compression=None)
    cache = PyramidCache(tmp_path / "cache")
    with open_volume(tiff) as reader:
        first = build_pyramid(reader, cache)
    write_volume(tiff, 255 - data, compression=None)
    os.utime(tiff, ns=(os.stat(first).st_mtime_ns, os.stat(first).st_mtime_ns + 10**9))
    with open_volume(tiff) as reader:
        assert open_with_pyramid(reader, cache) is reader
        second = build_pyramid(reader, cache)
    assert second != first and not first.exists()
    with open_with_pyramid(open_volume(tiff), cache) as reader:
        assert reader.level(1).read_slice(0)[0, 0] == np.rint(
            (255 - data[0, :2, :2].astype(float)).mean()
        )


def test_small_volumes_need_none_and_cancelling_leaves_nothing(tmp_path):
    small = write_volume(tmp_path / "small.tif", stack((2, 300, 300)))
    with open_volume(small) as reader:
        assert not needs_pyramid(reader)
    big = write_volume(tmp_path / "big.tif", stack((3, 2100, 800)), compression=None)
    cache = PyramidCache(tmp_path / "cache")
    with open_volume(big) as reader:
        with pytest.raises(CancelledError):
            build_pyramid(reader, cache, should_cancel=lambda: True)
        assert cache.find(reader.info) is None
    assert list((tmp_path / "cache").iterdir()) == []
