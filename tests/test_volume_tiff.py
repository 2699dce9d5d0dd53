"""Multi-page and single-page TIFF volumes: probing, lazy reading, layouts, calibration."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.errors import VolumeError
from biosegment.volumes import detect_file_type, normalise, open_volume, probe_volume

REPO = Path(__file__).resolve().parents[1]
DTYPES = ["uint8", "uint16", "float32"]


def sample(shape=(7, 45, 62), dtype="uint8", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def write(path: Path, array: np.ndarray, **options) -> Path:
    options.setdefault("photometric", "minisblack")
    tifffile.imwrite(path, array, **options)
    return path


LAYOUTS = {
    "imagej": {"imagej": True, "metadata": {"axes": "ZYX"}},
    "shaped": {},
    "plain": {"metadata": None},
    "zlib": {"compression": "zlib"},
    "zlib-plain": {"compression": "zlib", "metadata": None},
    "big-endian": {"byteorder": ">"},
    "strips": {"rowsperstrip": 7},
    "tiles-zlib": {"tile": (32, 32), "compression": "zlib"},
    "bigtiff": {"bigtiff": True},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_round_trip_every_layout_and_dtype(tmp_path, layout, dtype):
    array = sample(dtype=dtype)
    path = write(tmp_path / "stack.tif", array, **LAYOUTS[layout])
    info = probe_volume(path)
    assert (info.file_type, info.shape, info.dtype) == ("tif3d", array.shape, dtype)
    assert info.files == (path,)
    with open_volume(path) as reader:
        assert reader.shape == array.shape and reader.dtype == np.dtype(dtype)
        for z in (0, 3, 6):
            plane = reader.read_slice(z)
            assert plane.dtype == np.dtype(dtype) and plane.dtype.isnative
            np.testing.assert_array_equal(plane, array[z])
        np.testing.assert_array_equal(reader.read_block(0, 7), array)


@pytest.mark.parametrize("layout", ["imagej", "plain", "zlib", "tiles-zlib", "big-endian"])
def test_read_block_windows_equal_numpy_slicing(tmp_path, layout):
    array = sample(shape=(9, 50, 70), dtype="uint16", seed=3)
    path = write(tmp_path / "stack.tif", array, **LAYOUTS[layout])
    windows = [
        (slice(None), slice(None)),
        (slice(5, 33), slice(10, 69)),
        (slice(0, 1), slice(69, 70)),
        (slice(3, 40, 4), slice(None, None, 3)),
        (slice(-10, None), slice(-5, -1)),
    ]
    with open_volume(path) as reader:
        for z0, z1 in [(0, 9), (2, 5), (8, 9), (4, 4)]:
            for ys, xs in windows:
                block = reader.read_block(z0, z1, ys, xs)
                np.testing.assert_array_equal(block, array[z0:z1, ys, xs])
                assert block.dtype == np.uint16
        with pytest.raises(IndexError):
            reader.read_block(3, 10)
        with pytest.raises(IndexError):
            reader.read_slice(9)


def test_uncompressed_contiguous_stacks_are_memory_mapped(tmp_path):
    array = sample()
    with open_volume(write(tmp_path / "ij.tif", array, **LAYOUTS["imagej"])) as reader:
        assert reader.is_memory_mapped
    with open_volume(write(tmp_path / "z.tif", array, compression="zlib")) as reader:
        assert not reader.is_memory_mapped
        np.testing.assert_array_equal(reader.read_slice(4), array[4])


def test_compressed_pages_are_decoded_one_at_a_time(tmp_path):
    """Corrupting one compressed page breaks only that slice: others never decode it."""
    array = sample(shape=(5, 64, 64))
    path = write(tmp_path / "z.tif", array, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start, count = tif.pages[3].dataoffsets[0], tif.pages[3].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[start + 8 : start + count - 8] = bytes(count - 16)
    path.write_bytes(bytes(data))
    with open_volume(path) as reader:
        for z in (0, 1, 2, 4):
            np.testing.assert_array_equal(reader.read_slice(z), array[z])
        with pytest.raises(VolumeError, match=r"z\.tif.*page 3"):
            reader.read_slice(3)


def test_single_page_tiff_is_tif2d(tmp_path):
    plane = sample(shape=(1, 33, 41))[0]
    path = write(tmp_path / "one.tif", plane)
    assert detect_file_type(path) == "tif2d"
    info = probe_volume(path)
    assert (info.file_type, info.shape) == ("tif2d", (1, 33, 41))
    with open_volume(path, "tif2d") as reader:
        np.testing.assert_array_equal(reader.read_slice(0), plane)


def test_declared_type_is_a_hint_and_reported_type_is_what_the_file_holds(tmp_path):
    path = write(tmp_path / "stack.tif", sample())
    assert probe_volume(path, "tif2d").file_type == "tif3d"


def test_folder_with_one_tiff_is_that_tiff(tmp_path):
    raw = tmp_path / "EM" / "mito" / "raw"
    raw.mkdir(parents=True)
    array = sample()
    write(raw / "volume.tif", array)
    (raw / ".volume.tif.part").write_bytes(b"half a copy")
    (raw / "notes.txt").write_text("acquired 2024")
    assert detect_file_type(raw) == "tif3d"
    with open_volume(raw) as reader:
        assert reader.info.files == (raw / "volume.tif",)
        np.testing.assert_array_equal(reader.read_block(0, 7), array)


def test_imagej_channels_without_slices_is_a_z_stack(isbi_dir):
    """tifffile writes unlabeled greyscale stacks as "channels=N"; the ISBI files are such."""
    info = probe_volume(isbi_dir / "train-volume.tif")
    assert (info.file_type, info.shape, info.dtype) == ("tif3d", (30, 512, 512), "uint8")
    with open_volume(isbi_dir / "train-labels.tif") as labels:
        assert labels.is_memory_mapped
        assert set(np.unique(labels.read_slice(29)).tolist()) == {0, 255}


def test_many_pages_with_a_stack_description_probe_without_walking_the_pages(tmp_path):
    """An ImageJ stack declares its depth; the page chain is not walked, so a damaged IFD far
    into the chain does not matter to probing (it would if every page were parsed)."""
    array = np.zeros((1500, 16, 16), np.uint8)
    path = write(tmp_path / "many.tif", array, **LAYOUTS["imagej"])
    with tifffile.TiffFile(path) as tif:
        ifd_1000 = tif.pages[1000].offset
    data = bytearray(path.read_bytes())
    data[ifd_1000 : ifd_1000 + 2] = b"\xff\xff"  # tag count 65535: tifffile would reject it
    path.write_bytes(bytes(data))
    info = probe_volume(path)
    assert info.shape == (1500, 16, 16)
    with open_volume(path) as reader:
        assert reader.is_memory_mapped
        assert reader.read_slice(1400).shape == (16, 16)


def test_many_plain_pages_probe_quickly(tmp_path):
    array = sample(shape=(1200, 8, 8))
    path = write(tmp_path / "plain.tif", array, metadata=None, compression="zlib")
    info = probe_volume(path)
    assert info.shape == (1200, 8, 8)
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_slice(1199), array[1199])


def test_concurrent_reads_of_compressed_pages_are_consistent(tmp_path):
    array = sample(shape=(16, 40, 40), dtype="uint16", seed=7)
    path = write(tmp_path / "z.tif", array, compression="zlib")
    with open_volume(path) as reader, ThreadPoolExecutor(4) as pool:
        planes = list(pool.map(reader.read_slice, [z % 16 for z in range(64)]))
    for z, plane in enumerate(planes):
        np.testing.assert_array_equal(plane, array[z % 16])


def test_reading_after_close_fails_loudly(tmp_path):
    reader = open_volume(write(tmp_path / "z.tif", sample(), compression="zlib"))
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read_slice(0)


@pytest.mark.parametrize("unit, scale", [("nm", 1.0), ("micron", 1000.0), ("\\u00B5m", 1000.0)])
def test_voxel_size_from_imagej_calibration(tmp_path, unit, scale):
    path = write(
        tmp_path / "cal.tif",
        sample(),
        imagej=True,
        resolution=(1 / 4.0, 1 / 5.0),
        metadata={"axes": "ZYX", "spacing": 30.0, "unit": unit},
    )
    assert probe_volume(path).voxel_size == pytest.approx((30.0 * scale, 5.0 * scale, 4.0 * scale))


def test_imagej_without_spacing_means_one_unit_per_slice(tmp_path):
    path = write(
        tmp_path / "cal.tif",
        sample(),
        imagej=True,
        resolution=(0.5, 0.5),
        metadata={"axes": "ZYX", "unit": "nm"},
    )
    assert probe_volume(path).voxel_size == pytest.approx((1.0, 2.0, 2.0))


def test_uncalibrated_files_have_no_voxel_size(tmp_path):
    plain = write(tmp_path / "plain.tif", sample())
    dpi = write(tmp_path / "dpi.tif", sample(), resolution=(72, 72), resolutionunit="INCH")
    pixel = write(tmp_path / "pixel.tif", sample(), imagej=True, metadata={"axes": "ZYX"})
    assert [probe_volume(p).voxel_size for p in (plain, dpi, pixel)] == [None, None, None]


def test_unicode_and_spaces_in_paths(tmp_path):
    folder = tmp_path / "Données brutes" / "μ-stack 1"
    folder.mkdir(parents=True)
    array = sample()
    path = write(folder / "Zelle Ω 01.tif", array, compression="zlib")
    assert detect_file_type(folder) == "tif3d"
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_block(1, 3), array[1:3])


def test_uint16_and_float32_normalise_to_unit_range(tmp_path):
    array16 = np.array([[[0, 32768, 65535]]], np.uint16)
    arrayf = np.array([[[-0.5, 0.25, 1.5]]], np.float32)
    with open_volume(write(tmp_path / "u16.tif", array16)) as reader:
        np.testing.assert_allclose(normalise(reader.read_slice(0)), [[0.0, 32768 / 65535, 1.0]])
    with open_volume(write(tmp_path / "f32.tif", arrayf)) as reader:
        scaled = normalise(reader.read_slice(0))
        assert scaled.dtype == np.float32
        np.testing.assert_allclose(scaled, [[0.0, 0.25, 1.0]])


def test_ome_tiff_stack_and_physical_sizes(tmp_path):
    array = sample()
    path = write(
        tmp_path / "stack.ome.tif",
        array,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.004,
            "PhysicalSizeY": 0.005,
            "PhysicalSizeZ": 50,
            "PhysicalSizeZUnit": "nm",
        },
    )
    info = probe_volume(path)
    assert info.shape == array.shape
    assert info.voxel_size == pytest.approx((50.0, 5.0, 4.0))
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 7), array)


def test_ome_tiff_time_series_is_read_as_a_stack_and_channels_are_refused(tmp_path):
    array = sample(shape=(5, 16, 16))
    series = write(
        tmp_path / "t.ome.tif", array, ome=True, compression="zlib", metadata={"axes": "TYX"}
    )
    assert probe_volume(series).shape == (5, 16, 16)
    channels = write(
        tmp_path / "c.ome.tif",
        np.zeros((3, 2, 16, 16), np.uint8),
        ome=True,
        metadata={"axes": "ZCYX"},
    )
    with pytest.raises(VolumeError, match=r"c\.ome\.tif: has 2 OME channels"):
        probe_volume(channels)


SHRINK_SCRIPT = """
import os, sys
from biosegment.errors import VolumeError
from biosegment.volumes import open_volume
path = sys.argv[1]
with open_volume(path) as reader:
    assert reader.is_memory_mapped
    reader.read_slice(6)
    os.truncate(path, os.path.getsize(path) // 3)  # a copy tool overwriting in place
    try:
        reader.read_slice(6)
    except VolumeError as error:
        print("VolumeError:", error)
"""


@pytest.mark.skipif(os.name != "posix", reason="in-place truncation of a mapped file is POSIX")
def test_memory_mapped_file_shrinking_underneath_is_an_error_not_a_crash(tmp_path):
    """Reading a mapped page past a file's new end would kill the process with SIGBUS; the
    subprocess keeps that from taking the test run down if the guard ever goes missing."""
    path = write(tmp_path / "stack.tif", sample(), **LAYOUTS["imagej"])
    result = subprocess.run(
        [sys.executable, "-c", SHRINK_SCRIPT, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "VolumeError:" in result.stdout and "stack.tif: file shrank" in result.stdout
