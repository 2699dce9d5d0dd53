"""A TIFF is never decoded in pieces larger than ``limits.max_decode_mb``.

A compressed strip or tile is unpacked whole, so a small file holding one zlib strip of a huge
slice would cost the whole slice in memory for every tile shown. Such files are refused at
probe time, naming the file and what to do; files in ordinary strips or tiles are read a few
strips at a time, and uncompressed pages a row at a time, however tall their strips.
"""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog.probe import dataset_facts
from biosegment.errors import VolumeError
from biosegment.volumes import (
    VolumeLimits,
    open_volume,
    probe_volume,
    set_volume_limits,
    volume_limits,
)

SIDE = 20_000  # 400 MB of uint8 pixels per slice, in a file of about 2 MB


def zlib_zero_strips(height: int, width: int, rows_per_strip: int) -> Iterator[bytes]:
    """Compressed strips of zeros, made a few MB at a time (never a whole slice in memory)."""
    block_rows = max(1, min(rows_per_strip, 2**22 // width))
    zeros = bytes(block_rows * width)
    for top in range(0, height, rows_per_strip):
        left = min(rows_per_strip, height - top)
        packer = zlib.compressobj(1)
        parts = []
        while left:
            rows = min(left, block_rows)
            parts.append(packer.compress(zeros[: rows * width]))
            left -= rows
        parts.append(packer.flush())
        yield b"".join(parts)


def write_zero_slice(path: Path, rows_per_strip: int, side: int = SIDE) -> Path:
    tifffile.imwrite(
        path,
        zlib_zero_strips(side, side, rows_per_strip),
        shape=(side, side),
        dtype=np.uint8,
        compression="zlib",
        rowsperstrip=rows_per_strip,
        photometric="minisblack",
    )
    return path


def peak_mb(work) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_one_huge_compressed_strip_is_refused_naming_the_file_without_decoding(tmp_path):
    path = write_zero_slice(tmp_path / "one-strip.tif", rows_per_strip=SIDE)
    assert path.stat().st_size < 4 * 2**20

    def probe_and_open() -> None:
        for attempt in (lambda: probe_volume(path), lambda: open_volume(path)):
            with pytest.raises(VolumeError) as refused:
                attempt()
            message = str(refused.value)
            assert "one-strip.tif" in message and "page 0" in message
            assert f"one strip of {SIDE} x {SIDE} pixels needs 381 MiB" in message
            assert "limits.max_decode_mb" in message and "tiles" in message

    assert peak_mb(probe_and_open) < 16

    # the catalog lists it as a dataset with a problem, saying why
    facts = dataset_facts(tmp_path, "one-strip.tif")
    assert facts["state"] == "error"
    assert facts["error"].startswith("one-strip.tif: page 0: one strip of")


def test_a_file_in_ordinary_strips_is_read_tile_by_tile_in_little_memory(tmp_path):
    path = write_zero_slice(tmp_path / "strips.tif", rows_per_strip=64)
    assert probe_volume(path).shape == (1, SIDE, SIDE)

    def read_tiles() -> None:
        with open_volume(path) as reader:
            tile = reader.read_block(0, 1, slice(10_000, 10_512), slice(9_000, 9_512))
            assert tile.shape == (1, 512, 512) and not tile.any()
            overview = reader.read_block(0, 1, slice(None, None, 64), slice(None, None, 64))
            assert overview.shape == (1, 313, 313)

    assert peak_mb(read_tiles) < 16


def test_the_limit_is_configurable(tmp_path):
    path = write_zero_slice(tmp_path / "strips.tif", rows_per_strip=512, side=4096)
    default = volume_limits()
    set_volume_limits(VolumeLimits(max_decode_mb=1))
    try:
        with pytest.raises(
            VolumeError,
            match=r"strips\.tif.*one strip of 512 x 4096 pixels needs 2\.0 MiB.*limit of 1 MiB",
        ):
            probe_volume(path)
        facts = dataset_facts(tmp_path, "strips.tif")
        assert facts["state"] == "error" and "limits.max_decode_mb" in facts["error"]
    finally:
        set_volume_limits(default)
    assert probe_volume(path).shape == (1, 4096, 4096)


def write_scattered_pages(path: Path, array: np.ndarray, **options) -> Path:
    """Uncompressed pages written one at a time, so no memory map covers them."""
    for plane in array:
        tifffile.imwrite(
            path, plane, append=True, metadata=None, photometric="minisblack", **options
        )
    return path


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_uncompressed_pages_in_one_tall_strip_are_read_by_rows(tmp_path, byteorder):
    rng = np.random.default_rng(5)
    array = rng.integers(0, 60_000, (3, 1024, 700), dtype=np.uint16)
    path = write_scattered_pages(
        tmp_path / "tall.tif", array, rowsperstrip=1024, byteorder=byteorder
    )
    # below one strip (1.4 MiB): decoding a strip whole would be refused, reading rows is not
    default = volume_limits()
    set_volume_limits(VolumeLimits(max_decode_mb=1))
    try:
        with open_volume(path) as reader:
            assert not reader.is_memory_mapped
            for ys, xs in [
                (slice(None), slice(None)),
                (slice(17, 540), slice(33, 690)),
                (slice(1023, 1024), slice(0, 1)),
                (slice(1, None, 7), slice(None, None, 5)),
            ]:
                block = reader.read_block(0, 3, ys, xs)
                assert block.dtype == np.uint16 and block.dtype.isnative
                np.testing.assert_array_equal(block, array[:, ys, xs])
            np.testing.assert_array_equal(reader.read_slice(1), array[1])
    finally:
        set_volume_limits(default)


def test_a_folder_of_slices_in_one_huge_strip_each_is_refused_naming_a_slice(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(2):
        write_zero_slice(folder / f"z{z}.tif", rows_per_strip=4096, side=4096)
    default = volume_limits()
    set_volume_limits(VolumeLimits(max_decode_mb=8))
    try:
        with pytest.raises(VolumeError, match=r"z0\.tif.*one strip of 4096 x 4096 pixels"):
            probe_volume(folder)
        facts = dataset_facts(tmp_path, "slices")
        assert facts["state"] == "error" and "limits.max_decode_mb" in facts["error"]
    finally:
        set_volume_limits(default)
    assert probe_volume(folder).shape == (2, 4096, 4096)
