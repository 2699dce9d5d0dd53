"""Folders of one TIFF or PNG per slice: natural order, header-only probing, consistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.errors import VolumeError
from biosegment.volumes import (
    IMAGE_SUFFIXES,
    detect_file_type,
    natural_sort_key,
    open_volume,
    probe_volume,
)


def sample(shape=(12, 30, 44), dtype="uint8", seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def write_tiff_slices(folder: Path, array: np.ndarray, name="z{}.tif") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name.format(z) for z in range(len(array))]
    for path, plane in zip(paths, array):
        tifffile.imwrite(path, plane, photometric="minisblack")
    return paths


def write_png_slices(folder: Path, array: np.ndarray, name="z{}.png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name.format(z) for z in range(len(array))]
    for path, plane in zip(paths, array):
        Image.fromarray(plane).save(path)
    return paths


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_tiff_slice_folder_round_trip(tmp_path, dtype):
    array = sample(dtype=dtype)
    files = write_tiff_slices(tmp_path / "slices", array)
    assert detect_file_type(tmp_path / "slices") == "tifseq"
    info = probe_volume(tmp_path / "slices")
    assert (info.file_type, info.shape, info.dtype) == ("tifseq", array.shape, dtype)
    assert list(info.files) == files  # z0 .. z11 in numeric order, not z0, z1, z10, z11, z2
    with open_volume(tmp_path / "slices") as reader:
        np.testing.assert_array_equal(reader.read_block(0, 12), array)
        np.testing.assert_array_equal(
            reader.read_block(3, 9, slice(4, 20), slice(1, None, 5)), array[3:9, 4:20, 1::5]
        )


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_png_slice_folder_round_trip(tmp_path, dtype):
    array = sample(dtype=dtype)
    files = write_png_slices(tmp_path / "slices", array)
    assert detect_file_type(tmp_path / "slices") == "pngseq"
    info = probe_volume(tmp_path / "slices", "pngseq")
    assert (info.file_type, info.shape, info.dtype) == ("pngseq", array.shape, dtype)
    assert list(info.files) == files
    with open_volume(tmp_path / "slices") as reader:
        for z in range(12):
            np.testing.assert_array_equal(reader.read_slice(z), array[z])
        np.testing.assert_array_equal(reader.read_block(5, 7, slice(None, 10)), array[5:7, :10])


def test_palette_png_slices_read_as_their_indices(tmp_path):
    labels = np.zeros((2, 20, 20), np.uint8)
    labels[:, 5:10, 5:10] = 2
    labels[1, 12:, :] = 1
    folder = tmp_path / "labels"
    folder.mkdir()
    for z, plane in enumerate(labels):
        image = Image.fromarray(plane, mode="L").convert("P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
        image.save(folder / f"{z}.png")
    with open_volume(folder) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 2), labels)


def test_natural_sort_orders_numbers_by_value():
    names = ["z10.png", "z2.png", "Z1.png", "z01.png", "slice_100_b.png", "slice_20_a.png", "z.png"]
    assert sorted(names, key=natural_sort_key) == [
        "slice_20_a.png",
        "slice_100_b.png",
        "z.png",
        "z01.png",
        "Z1.png",
        "z2.png",
        "z10.png",
    ]


def test_files_are_ordered_naturally_with_unpadded_numbers(tmp_path):
    array = sample(shape=(25, 8, 8))
    write_png_slices(tmp_path / "s", array, name="img_{}.png")
    with open_volume(tmp_path / "s") as reader:
        assert [p.name for p in reader.info.files[:3]] == ["img_0.png", "img_1.png", "img_2.png"]
        assert reader.info.files[10].name == "img_10.png"
        np.testing.assert_array_equal(reader.read_slice(10), array[10])
        np.testing.assert_array_equal(reader.read_slice(24), array[24])


def test_hidden_temporary_and_non_image_files_are_not_slices(tmp_path):
    array = sample(shape=(3, 10, 12))
    folder = tmp_path / "s"
    write_png_slices(folder, array)
    (folder / ".z3.png.part").write_bytes(b"partial copy")
    (folder / "z4.png.part").write_bytes(b"partial copy")
    (folder / "~z5.png").write_bytes(b"editor lock")
    (folder / "Thumbs.db").write_bytes(b"\0")
    (folder / "metadata.json").write_text("{}")
    (folder / "sub.png").mkdir()
    info = probe_volume(folder)
    assert [p.name for p in info.files] == ["z0.png", "z1.png", "z2.png"]


def test_image_suffixes_match_case_insensitively(tmp_path):
    assert {".tif", ".tiff", ".png"} <= set(IMAGE_SUFFIXES)
    array = sample(shape=(3, 10, 12))
    write_tiff_slices(tmp_path / "s", array, name="Slice{}.TIFF")
    with open_volume(tmp_path / "s") as reader:
        assert reader.info.file_type == "tifseq"
        np.testing.assert_array_equal(reader.read_block(0, 3), array)


def test_mixed_png_sizes_name_the_first_odd_file(tmp_path):
    array = sample(shape=(6, 20, 20))
    files = write_png_slices(tmp_path / "s", array)
    Image.fromarray(np.zeros((20, 21), np.uint8)).save(files[3])
    Image.fromarray(np.zeros((19, 20), np.uint8)).save(files[5])
    odd = r"z3\.png.*20x21.*first slice z0\.png is 20x20"
    with pytest.raises(VolumeError, match=odd) as caught:
        probe_volume(tmp_path / "s")
    assert caught.value.source == str(files[3])


def test_mixed_tiff_sizes_and_types_are_errors(tmp_path):
    files = write_tiff_slices(tmp_path / "s", sample(shape=(4, 16, 16)))
    tifffile.imwrite(files[2], np.zeros((16, 16), np.uint16))
    with pytest.raises(VolumeError, match=r"z2\.tif.*uint16.*z0\.tif holds uint8"):
        probe_volume(tmp_path / "s")
    tifffile.imwrite(files[2], np.zeros((16, 17), np.uint8))
    with pytest.raises(VolumeError, match=r"z2\.tif.*16x17"):
        probe_volume(tmp_path / "s")


def test_multipage_tiff_in_a_slice_folder_is_an_error(tmp_path):
    files = write_tiff_slices(tmp_path / "s", sample(shape=(3, 16, 16)))
    tifffile.imwrite(files[1], np.zeros((2, 16, 16), np.uint8), photometric="minisblack")
    with pytest.raises(VolumeError, match=r"z1\.tif.*2 pages"):
        probe_volume(tmp_path / "s", "tifseq")


def test_folder_mixing_png_and_tiff_is_an_error_unless_the_type_is_given(tmp_path):
    array = sample(shape=(3, 16, 16))
    write_png_slices(tmp_path / "s", array)
    write_tiff_slices(tmp_path / "s", array[:2], name="t{}.tif")
    with pytest.raises(VolumeError, match="mixes TIFF and PNG"):
        detect_file_type(tmp_path / "s")
    assert probe_volume(tmp_path / "s", "pngseq").shape == (3, 16, 16)
    assert probe_volume(tmp_path / "s", "tifseq").shape == (2, 16, 16)


def test_slice_changed_after_probing_is_reported_not_returned(tmp_path):
    files = write_png_slices(tmp_path / "s", sample(shape=(3, 16, 16)))
    reader = open_volume(tmp_path / "s")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(files[1])
    with pytest.raises(VolumeError, match=r"z1\.png.*8x8"):
        reader.read_slice(1)


def test_slice_folder_type_needs_a_folder(tmp_path):
    path = write_tiff_slices(tmp_path / "s", sample(shape=(1, 8, 8)))[0]
    with pytest.raises(VolumeError, match="needs a folder"):
        open_volume(path, "tifseq")


def test_unicode_and_spaces_in_slice_paths(tmp_path):
    array = sample(shape=(4, 9, 9))
    folder = tmp_path / "Proben März" / "Schnitt Ø 2"
    write_png_slices(folder, array, name="tranche {} é.png")
    with open_volume(folder) as reader:
        np.testing.assert_array_equal(reader.read_block(0, 4), array)


def test_probing_png_slices_decodes_no_pixels(tmp_path):
    """Headers are enough: a slice whose pixel data is damaged still probes, and fails on read."""
    files = write_png_slices(tmp_path / "s", sample(shape=(3, 32, 32)))
    data = files[2].read_bytes()
    files[2].write_bytes(data[:60])  # IHDR intact, image data cut off
    info = probe_volume(tmp_path / "s")
    assert info.shape == (3, 32, 32)
    with open_volume(tmp_path / "s") as reader:
        reader.read_slice(1)
        with pytest.raises(VolumeError, match=r"z2\.png.*slice 2"):
            reader.read_slice(2)
