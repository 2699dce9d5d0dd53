"""Writing volumes and annotation slices: round trips, ImageJ metadata, atomic replacement."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.errors import VolumeError
from biosegment.volumes import (
    LabelVolumeWriter,
    annotation_slice_name,
    detect_file_type,
    open_volume,
    probe_volume,
    read_png_slice,
    write_png_slice,
    write_volume,
)

REPO = Path(__file__).resolve().parents[1]


def labels(shape=(6, 40, 50), seed=2) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.uint8)


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("compression", ["zlib", None])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_round_trip_through_our_reader(tmp_path, compression, dtype):
    rng = np.random.default_rng(4)
    array = (rng.random((5, 33, 47), dtype=np.float32) * 60000).astype(dtype)
    path = write_volume(
        tmp_path / "out.tif", array, compression=compression, voxel_size=(40.0, 4.0, 5.0)
    )
    info = probe_volume(path)
    assert (info.shape, info.dtype, info.file_type) == (array.shape, dtype, "tif3d")
    assert info.voxel_size == pytest.approx((40.0, 4.0, 5.0))
    with open_volume(path) as reader:
        assert reader.is_memory_mapped == (compression is None)
        np.testing.assert_array_equal(reader.read_block(0, 5), array)


@pytest.mark.parametrize("compression", ["zlib", None])
def test_files_carry_imagej_metadata_for_fiji_and_napari(tmp_path, compression):
    array = labels()
    path = write_volume(
        tmp_path / "labels.tif", array, compression=compression, voxel_size=(50.0, 4.0, 4.0)
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        meta = tif.imagej_metadata
        assert meta["images"] == 6 and meta["slices"] == 6 and meta.get("channels", 1) == 1
        assert meta["unit"] == "nm" and meta["spacing"] == pytest.approx(50.0)
        series = tif.series[0]
        assert series.axes == "ZYX" and series.shape == array.shape
        np.testing.assert_array_equal(series.asarray(), array)
        x_resolution = tif.pages.first.tags["XResolution"].value
        assert x_resolution[0] / x_resolution[1] == pytest.approx(0.25)
        assert tif.pages.first.compression == (8 if compression else 1)


def test_two_dimensional_array_is_one_slice_and_bool_becomes_uint8(tmp_path):
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    path = write_volume(tmp_path / "mask.tif", mask)
    info = probe_volume(path)
    assert (info.file_type, info.shape, info.dtype) == ("tif2d", (1, 10, 12), "uint8")
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_slice(0), mask.astype(np.uint8))


def test_streaming_writer_keeps_the_final_name_absent_until_commit(tmp_path):
    array = labels()
    out = tmp_path / "segmentations" / "mito" / "run 1"
    writer = LabelVolumeWriter(out / "labels.tif", array.shape, voxel_size=(30, 5, 5))
    assert writer.temp_path.parent == out and writer.temp_path.name.startswith(".")
    for z in range(3):
        writer.write_slice(z, array[z])
    assert writer.temp_path.exists()
    assert not (out / "labels.tif").exists()
    # A data-folder scan sees no volume yet: the temporary name is not an image file.
    with pytest.raises(VolumeError, match="no image files"):
        detect_file_type(out)
    writer.write_block(3, array[3:])
    assert writer.slices_written == 6
    assert writer.commit() == out / "labels.tif"
    assert folder_names(out) == ["labels.tif"]
    with open_volume(out / "labels.tif") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 6), array)


def test_abort_leaves_nothing(tmp_path):
    writer = LabelVolumeWriter(tmp_path / "labels.tif", (4, 8, 8))
    writer.write_slice(0, np.ones((8, 8), np.uint8))
    writer.abort()
    assert folder_names(tmp_path) == []
    writer.abort()  # aborting twice is harmless
    with pytest.raises(ValueError, match="already committed or aborted"):
        writer.write_slice(1, np.ones((8, 8), np.uint8))


@pytest.mark.parametrize("compression", ["zlib", None])
def test_error_mid_write_keeps_the_previous_file_intact(tmp_path, compression):
    path = tmp_path / "labels.tif"
    write_volume(path, labels(seed=9))
    previous = path.read_bytes()
    with pytest.raises(RuntimeError, match="cancelled"):
        with LabelVolumeWriter(path, (6, 40, 50), compression=compression) as writer:
            writer.write_slice(0, np.zeros((40, 50), np.uint8))
            writer.write_slice(1, np.zeros((40, 50), np.uint8))
            raise RuntimeError("job cancelled")
    assert path.read_bytes() == previous
    assert folder_names(tmp_path) == ["labels.tif"]


def test_committing_with_missing_slices_is_an_error_and_discards_the_output(tmp_path):
    path = tmp_path / "labels.tif"
    write_volume(path, labels(seed=9))
    previous = path.read_bytes()
    with pytest.raises(ValueError, match="only 2 of 6 slices"):
        with LabelVolumeWriter(path, (6, 40, 50)) as writer:
            writer.write_block(0, np.zeros((2, 40, 50), np.uint8))
    assert path.read_bytes() == previous
    assert folder_names(tmp_path) == ["labels.tif"]


def test_slices_must_arrive_in_order_with_the_right_shape_and_values(tmp_path):
    with LabelVolumeWriter(tmp_path / "l.tif", (3, 4, 5)) as writer:
        with pytest.raises(ValueError, match="expected slice 0, got 1"):
            writer.write_slice(1, np.zeros((4, 5), np.uint8))
        with pytest.raises(ValueError, match="shape"):
            writer.write_slice(0, np.zeros((5, 4), np.uint8))
        with pytest.raises(ValueError, match="do not fit"):
            writer.write_slice(0, np.full((4, 5), 300, np.int64))
        with pytest.raises(ValueError, match="round them"):
            writer.write_slice(0, np.zeros((4, 5), np.float32))
        writer.write_slice(0, np.full((4, 5), 2, np.int64))  # argmax output is fine when it fits
        writer.write_block(1, np.ones((2, 4, 5), np.uint8))
        with pytest.raises(ValueError, match="outside"):
            writer.write_slice(3, np.zeros((4, 5), np.uint8))
    with open_volume(tmp_path / "l.tif") as reader:
        assert reader.read_slice(0).tolist() == [[2] * 5] * 4


def test_bad_arguments_create_no_file(tmp_path):
    with pytest.raises(ValueError, match="int16"):
        LabelVolumeWriter(tmp_path / "a.tif", (2, 3, 4), dtype="int16")
    with pytest.raises(ValueError, match="shape"):
        LabelVolumeWriter(tmp_path / "a.tif", (3, 4))
    with pytest.raises(ValueError, match="positive"):
        LabelVolumeWriter(tmp_path / "a.tif", (2, 3, 4), voxel_size=(0, 1, 1))
    assert folder_names(tmp_path) == []


def test_unicode_and_spaces_in_output_path(tmp_path):
    array = labels(shape=(2, 8, 9))
    path = write_volume(tmp_path / "Ergebnisse März" / "Seg ø 1.tif", array)
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 2), array)


@pytest.mark.skipif(os.name != "posix", reason="replacing an open file is POSIX behaviour")
def test_open_reader_keeps_reading_the_old_file_after_replacement(tmp_path):
    path = tmp_path / "labels.tif"
    old, new = labels(seed=1), labels(seed=2)
    write_volume(path, old, compression=None)
    with open_volume(path) as reader:
        write_volume(path, new, compression=None)
        np.testing.assert_array_equal(reader.read_slice(5), old[5])
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_slice(5), new[5])


DISK_FULL_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    import numpy as np
    from biosegment.volumes import write_volume
    # Past this size the kernel refuses to grow any file, as a full disk would.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
    noise = np.random.default_rng(0).integers(0, 256, (8, 256, 256)).astype(np.uint8)
    compression = None if sys.argv[2] == "none" else sys.argv[2]
    try:
        write_volume(Path(sys.argv[1]), noise, compression=compression)
    except OSError as exc:
        print("OSError", exc.errno, "|".join(getattr(exc, "__notes__", [])))
        sys.exit(3)
    print("written")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("compression", ["zlib", "none"])
def test_disk_full_aborts_cleanly_and_keeps_the_old_file(tmp_path, compression):
    path = tmp_path / "labels.tif"
    write_volume(path, labels(seed=5))
    previous = path.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL_SCRIPT, str(path), compression],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("OSError")
    assert "labels.tif" in result.stdout and "previous file" in result.stdout
    assert path.read_bytes() == previous
    assert folder_names(tmp_path) == ["labels.tif"]


def test_png_slice_round_trip_and_atomic_replacement(tmp_path):
    folder = tmp_path / "annotations" / "isbi" / "scribbles"
    name = annotation_slice_name(12)
    assert name == "z00012.png"
    painted = np.full((30, 40), 255, np.uint8)
    painted[3:9, 4:20] = 1
    painted[20:, :5] = 0
    path = write_png_slice(folder / name, painted)
    np.testing.assert_array_equal(read_png_slice(path), painted)
    previous = path.read_bytes()
    with pytest.raises(ValueError, match="2-D uint8"):
        write_png_slice(path, painted.astype(np.uint16))
    with pytest.raises(ValueError, match="2-D uint8"):
        write_png_slice(path, painted[np.newaxis])
    assert path.read_bytes() == previous
    painted[0, 0] = 2
    write_png_slice(path, painted)
    np.testing.assert_array_equal(read_png_slice(path), painted)
    assert folder_names(folder) == [name]


def test_read_png_slice_rejects_16_bit(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "z00001.png")
    with pytest.raises(VolumeError, match=r"z00001\.png.*8-bit"):
        read_png_slice(tmp_path / "z00001.png")


@pytest.mark.parametrize("compression", ["zlib", None])
def test_bigtiff_output_keeps_shape_and_calibration(tmp_path, compression):
    array = labels(shape=(4, 20, 30))
    path = tmp_path / "big.tif"
    with LabelVolumeWriter(
        path, array.shape, compression=compression, bigtiff=True, voxel_size=(45.0, 6.0, 7.0)
    ) as writer:
        writer.write_block(0, array)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and not tif.is_imagej
        assert tif.series[0].shape == array.shape
    info = probe_volume(path)
    assert info.shape == array.shape and info.voxel_size == pytest.approx((45.0, 6.0, 7.0))
    with open_volume(path) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 4), array)


def test_forgotten_writer_leaves_no_temporary_file(tmp_path):
    writer = LabelVolumeWriter(tmp_path / "labels.tif", (3, 8, 8))
    writer.write_slice(0, np.zeros((8, 8), np.uint8))
    temp_path = writer.temp_path
    assert temp_path.exists()
    del writer
    gc.collect()
    assert not temp_path.exists()
    assert folder_names(tmp_path) == []
