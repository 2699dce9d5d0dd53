"""Bad volumes fail with a VolumeError that names the file, never a decoder's own exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from biosegment.errors import VolumeError
from biosegment.volumes import detect_file_type, open_volume, probe_volume, write_volume


def stack(shape=(6, 48, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def probe_and_read(path: Path, file_type: str | None = None) -> np.ndarray:
    with open_volume(path, file_type) as reader:
        return reader.read_block(0, reader.shape[0])


def cut(path: Path, keep: int, name: str) -> Path:
    target = path.with_name(name)
    target.write_bytes(path.read_bytes()[:keep])
    return target


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.tif").touch()
    with pytest.raises(VolumeError, match=r"empty\.tif: empty file \(0 bytes\)") as caught:
        probe_volume(tmp_path / "empty.tif")
    assert caught.value.source == str(tmp_path / "empty.tif")


def test_not_a_tiff(tmp_path):
    (tmp_path / "notes.tif").write_text("these are my notes, not an image")
    with pytest.raises(VolumeError, match=r"notes\.tif: reading the TIFF header failed: not a"):
        probe_volume(tmp_path / "notes.tif")
    (tmp_path / "header.tif").write_bytes(b"II*\x00")
    with pytest.raises(VolumeError, match=r"header\.tif"):
        probe_volume(tmp_path / "header.tif")


def test_truncated_imagej_stack_is_caught_at_probe_time(tmp_path):
    full = write_volume(tmp_path / "full.tif", stack(), compression=None)
    short = cut(full, full.stat().st_size // 2, "short.tif")
    with pytest.raises(VolumeError, match=r"short\.tif: truncated: the header declares 6 slices"):
        probe_volume(short)


def test_compressed_stack_with_pages_missing_is_caught_at_probe_time(tmp_path):
    full = write_volume(tmp_path / "full.tif", stack(), compression="zlib")
    short = cut(full, full.stat().st_size * 2 // 5, "short.tif")
    with pytest.raises(
        VolumeError,
        match=r"short\.tif: truncated: .*declares 6 slices but the "
        r"file holds only \d pages",
    ):
        probe_volume(short)


def test_last_page_data_cut_short_is_caught_at_probe_time(tmp_path):
    full = write_volume(tmp_path / "full.tif", stack(), compression="zlib")
    short = cut(full, full.stat().st_size - 20, "short.tif")
    with pytest.raises(VolumeError, match=r"short\.tif: page 5: truncated: pixel data run to"):
        probe_volume(short)


def test_plain_tiff_with_a_broken_page_chain_is_caught_at_probe_time(tmp_path):
    full = tmp_path / "plain.tif"
    tifffile.imwrite(full, stack(), metadata=None, photometric="minisblack")
    short = cut(full, full.stat().st_size // 2, "short.tif")
    with pytest.raises(VolumeError, match=r"short\.tif: .*corrupt or truncated"):
        probe_volume(short)


def test_every_truncation_fails_cleanly_or_reads_correct_pixels(tmp_path):
    """Cut files at many points: each either raises VolumeError or returns the true data
    (cuts that only lose trailing metadata leave the pixels whole)."""
    array = stack(shape=(5, 24, 32), seed=1)
    layouts = {
        "ours-zlib": lambda p: write_volume(p, array, compression="zlib"),
        "ours-raw": lambda p: write_volume(p, array, compression=None),
        "plain": lambda p: tifffile.imwrite(p, array, metadata=None, photometric="minisblack"),
        "plain-lzw": lambda p: tifffile.imwrite(
            p, array, metadata=None, compression="lzw", photometric="minisblack"
        ),
    }
    for name, write in layouts.items():
        full = tmp_path / f"{name}.tif"
        write(full)
        size = full.stat().st_size
        for keep in sorted({1, 7, 8, 100, size // 3, size // 2, size - 300, size - 9, size - 1}):
            short = cut(full, keep, f"{name}-{keep}.tif")
            try:
                pixels = probe_and_read(short)
            except VolumeError as error:
                assert short.name in str(error)
            else:
                np.testing.assert_array_equal(pixels, array, err_msg=f"{short.name}")


def test_corrupt_compressed_page_is_caught_at_read_time(tmp_path):
    path = write_volume(tmp_path / "labels.tif", stack(), compression="zlib")
    with tifffile.TiffFile(path) as tif:
        start, count = tif.pages[4].dataoffsets[0], tif.pages[4].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[start : start + count] = b"\x55" * count
    path.write_bytes(bytes(data))
    assert probe_volume(path).shape == (6, 48, 64)
    with pytest.raises(VolumeError, match=r"labels\.tif: page 4: decoding the TIFF page failed"):
        probe_and_read(path)


def test_corrupt_png_slices(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for z, plane in enumerate(stack(shape=(3, 16, 16))):
        Image.fromarray(plane).save(folder / f"{z}.png")
    good = (folder / "1.png").read_bytes()
    cases = {
        b"": r"1\.png: empty file",
        b"GIF89a" + bytes(40): r"1\.png: not a PNG file",
        good[:20]: r"1\.png: corrupt PNG: header cut short",
        good[:16] + b"\x00\x00\x00\x00" + good[20:]: r"1\.png: corrupt PNG: damaged IHDR",
    }
    for content, message in cases.items():
        (folder / "1.png").write_bytes(content)
        with pytest.raises(VolumeError, match=message):
            probe_volume(folder)
    damaged = bytearray(good)
    damaged[45:60] = bytes(15)  # inside the image data: only decoding notices
    (folder / "1.png").write_bytes(bytes(damaged))
    with pytest.raises(VolumeError, match=r"1\.png: slice 1: decoding the PNG failed"):
        probe_and_read(folder)


def test_missing_and_empty_locations(tmp_path):
    with pytest.raises(VolumeError, match=r"nowhere: file or folder not found"):
        probe_volume(tmp_path / "nowhere")
    with pytest.raises(VolumeError, match=r"nowhere\.tif: file or folder not found"):
        open_volume(tmp_path / "nowhere.tif", "tif3d")
    with pytest.raises(VolumeError, match=r"gone: file or folder not found"):
        open_volume(tmp_path / "gone", "pngseq")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("slices come later")
    with pytest.raises(VolumeError, match=r"empty: folder holds no image files"):
        detect_file_type(tmp_path / "empty")
    with pytest.raises(VolumeError, match=r"empty: no \.png slice files"):
        probe_volume(tmp_path / "empty", "pngseq")


def test_unknown_file_type_and_lone_files_that_are_not_volumes(tmp_path):
    path = write_volume(tmp_path / "v.tif", stack())
    with pytest.raises(VolumeError, match=r"v\.tif: unknown file type 'nifti'"):
        open_volume(path, "nifti")
    Image.fromarray(stack()[0]).save(tmp_path / "one.png")
    with pytest.raises(VolumeError, match=r"one\.png: a single PNG is not a volume"):
        detect_file_type(tmp_path / "one.png")
    (tmp_path / "data.raw").write_bytes(b"\0" * 64)
    with pytest.raises(VolumeError, match=r"data\.raw: not an image file"):
        probe_volume(tmp_path / "data.raw")


@pytest.mark.parametrize(
    "dtype, described",
    [
        ("int16", "16-bit signed integer"),
        ("float64", "64-bit float"),
        ("uint32", "32-bit unsigned integer"),
        ("bool", "1-bit"),
    ],
)
def test_unsupported_pixel_types_name_file_and_type(tmp_path, dtype, described):
    path = tmp_path / f"{dtype}.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), dtype), photometric="minisblack")
    with pytest.raises(
        VolumeError,
        match=rf"{dtype}\.tif: page 0: pixel type {described}.*not "
        "supported",
    ):
        probe_volume(path)


def test_multichannel_images_are_not_supported_yet(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 8, 8, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(
        tmp_path / "channels.tif",
        np.zeros((4, 2, 8, 8), np.uint8),
        imagej=True,
        metadata={"axes": "ZCYX"},
    )
    rgb_folder = tmp_path / "rgb_pngs"
    rgb_folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(rgb_folder / "0.png")
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(rgb_folder / "1.png")
    for path, name in [
        (tmp_path / "rgb.tif", r"rgb\.tif"),
        (tmp_path / "channels.tif", r"channels\.tif"),
        (rgb_folder, r"0\.png"),
    ]:
        with pytest.raises(VolumeError, match=rf"{name}.*multichannel .* not supported yet"):
            probe_volume(path)


def test_slice_folder_with_one_odd_tiff_names_it(tmp_path):
    folder = tmp_path / "tifs"
    folder.mkdir()
    for z in range(3):
        tifffile.imwrite(folder / f"s{z}.tif", np.zeros((8, 8), np.uint8))
    (folder / "s1.tif").write_bytes(b"")
    with pytest.raises(VolumeError, match=r"s1\.tif: empty file"):
        probe_volume(folder)
