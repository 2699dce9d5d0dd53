"""Regenerate the bad-input corpus in this folder: ``python tests/data/bad/make_corpus.py``.

Every file here is something a person (or a broken copy, or an attacker) could put in front of
BioSegment: image stacks that are truncated, corrupt, or declare absurd sizes; slice folders
that disagree with themselves; ``setup.json`` files that are broken in every way the old stack
let through; and names meant to escape a folder or a web page. ``tests/test_bad_inputs.py``
feeds each one to the product and expects a clear error that names the input, with every other
dataset and job left as it was. The files are small (a few KB each) and deterministic.
``hostile_names.json`` lists names that are created as folders at test time rather than
committed (some are not valid file names on every system a checkout may land on).
``reads/`` holds files that probe as sound but fail when their pixels are decoded, and
``uploads/`` request bodies (PNG and zTXt bombs) for the annotation upload. Files too big to
commit are made at test time by ``make_big.py``; symlinks leading out of the data folder are
made by the tests themselves.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

__all__ = ["build_corpus", "HERE"]

HERE = Path(__file__).resolve().parent


def _stack(shape=(6, 32, 48), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def _tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    import io

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, **kwargs)
    return buffer.getvalue()


def _bomb_tiff(width: int, height: int) -> bytes:
    """A little-endian TIFF of one page whose IFD declares ``width`` x ``height`` uint8 pixels
    stored in one strip of 16 bytes: a few hundred bytes on disk, gigabytes if believed."""
    entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 16),
    ]
    ifd_offset = 8 + 16
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset) + bytes(16))
    out += struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0)
    return bytes(out)


def _imagej_slice_bomb() -> bytes:
    """A real 1-page ImageJ TIFF whose description claims a million slices."""
    data = _tiff_bytes(_stack((1, 32, 48)), imagej=True)
    if b"images=1" in data:
        return data.replace(b"images=1", b"images=999999").replace(b"slices=1", b"slices=999999")
    return data.replace(b"ImageJ=", b"images=999999\nslices=999999\nImageJ=", 1)


def _corrupt_ifd() -> bytes:
    """A valid header whose first IFD offset points into noise."""
    data = bytearray(_tiff_bytes(_stack((3, 32, 48)), compression=None))
    (ifd,) = struct.unpack("<I", bytes(data[4:8]))
    noise = np.random.default_rng(3).integers(0, 256, 64, dtype=np.uint8).tobytes()
    data[ifd : ifd + 64] = noise
    return bytes(data)


def _png(path: Path, shape: tuple[int, int], seed: int) -> None:
    Image.fromarray(_stack((1, *shape), seed)[0]).save(path)


#: The ``.zarray`` of ``volumes/absurd.zarr``: 10^12 cubed voxels in slices of 512 x 512 chunks.
ABSURD_ZARRAY = {
    "zarr_format": 2,
    "shape": [10**12] * 3,
    "chunks": [1, 512, 512],
    "dtype": "|u1",
    "compressor": None,
    "fill_value": 0,
    "order": "C",
    "filters": None,
}


def _volumes(target: Path) -> None:
    folder = target / "volumes"
    folder.mkdir()
    full = _tiff_bytes(_stack(), compression=None)
    (folder / "truncated.tif").write_bytes(full[: len(full) // 2])
    (folder / "corrupt-ifd.tif").write_bytes(_corrupt_ifd())
    (folder / "not-a-tiff.tif").write_text("a lab notebook page saved with the wrong name\n")
    (folder / "empty.tif").write_bytes(b"")
    (folder / "bomb-dimensions.tif").write_bytes(_bomb_tiff(200_000, 200_000))
    (folder / "bomb-imagej-slices.tif").write_bytes(_imagej_slice_bomb())
    (folder / "rgb.tif").write_bytes(_tiff_bytes(_stack((32, 48, 3)), photometric="rgb"))
    (folder / "float64.tif").write_bytes(_tiff_bytes(_stack((2, 16, 16)).astype(np.float64)))

    mixed = folder / "pngseq-mixed-sizes"
    mixed.mkdir()
    _png(mixed / "z000.png", (32, 48), 1)
    _png(mixed / "z001.png", (32, 48), 2)
    _png(mixed / "z002.png", (40, 40), 3)

    broken = folder / "pngseq-broken-slice"
    broken.mkdir()
    _png(broken / "z000.png", (32, 48), 1)
    (broken / "z001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    _png(broken / "z002.png", (32, 48), 3)

    (folder / "short.mrc").write_bytes(_short_mrc())
    # a 200-byte header claiming 10^36 voxels: probing must refuse it, reading it would spin
    absurd = folder / "absurd.zarr"
    absurd.mkdir()
    (absurd / ".zarray").write_text(json.dumps(ABSURD_ZARRAY) + "\n", encoding="utf-8")

    tif_mixed = folder / "tifseq-mixed-dtypes"
    tif_mixed.mkdir()
    tifffile.imwrite(tif_mixed / "s01.tif", _stack((32, 48), 4))
    tifffile.imwrite(tif_mixed / "s02.tif", _stack((32, 48), 5).astype(np.uint16))


#: setup.json variants: each is broken in one way, with what the error must point at.
SETUP_VARIANTS: dict[str, object] = {
    "unknown-file-type.json": {
        "EM_location": "EM",
        "datasets": [{"title": "good-a", "file_type": "tif9d"}],
    },
    "location-outside-root.json": {"EM_location": "../../etc"},
    "absolute-location.json": {"EM_location": "/etc"},
    "model-location-escapes.json": {
        "EM_location": "EM",
        "models": [{"title": "m", "location": "models/../../secret.pytorch"}],
    },
    "wrong-types.json": {
        "EM_location": "EM",
        "datasets": [{"title": "good-a", "resolution": "very large"}],
    },
    "not-an-object.json": [1, 2, 3],
    "datasets-not-a-list.json": {"EM_location": "EM", "datasets": {"title": "good-a"}},
    "dataset-files-missing.json": {
        "EM_location": "EM",
        "datasets": [{"title": "no-such-dataset", "file_type": "tif3d"}],
    },
    "title-with-separators.json": {
        "EM_location": "EM",
        "datasets": [{"title": "../../outside", "file_type": "tif3d"}],
    },
}
#: Variants that are not JSON documents at all, written as raw bytes.
SETUP_RAW_VARIANTS: dict[str, bytes] = {
    "trailing-comma.json": b'{"EM_location": "EM", "datasets": [],}\n',
    "truncated.json": b'{"EM_location": "EM", "datasets": [{"title": "good-a"',
    "not-utf8.json": b'{"EM_location": "\xff\xfe EM"}',
    "deep-nesting.json": b"[" * 10_000 + b"]" * 10_000,
    "empty.json": b"",
}

HOSTILE_NAMES = [
    "<img src=x onerror=alert(1)>",
    "\"><svg onload=alert('owned')>",
    "name with 'quotes' & ampersands",
    "'; DROP TABLE datasets; --",
    "\u202eevil\u202dfig.tif",
    "tab\tand\x1bescape",
    "%2e%2e%2f%2e%2e",
    "unicode-\u00e9\u00e8-\u6570\u636e",
]


def _setup_files(target: Path) -> None:
    folder = target / "setup"
    folder.mkdir()
    for name, document in SETUP_VARIANTS.items():
        (folder / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for name, raw in SETUP_RAW_VARIANTS.items():
        (folder / name).write_bytes(raw)


def _short_mrc() -> bytes:
    """An MRC of 4 x 64 x 64 uint16 whose header claims 131072 slices (1 GiB)."""
    import io

    import mrcfile

    buffer = io.BytesIO()
    with mrcfile.new_mmap(
        str(HERE / ".short.mrc.part"), shape=(4, 64, 64), mrc_mode=6, overwrite=True
    ) as mrc:
        mrc.data[:] = 7
    data = bytearray((HERE / ".short.mrc.part").read_bytes())
    (HERE / ".short.mrc.part").unlink()
    data[8:12] = struct.pack("<i", 131072)  # nz
    buffer.write(bytes(data))
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG header claiming ``width`` x ``height`` greyscale pixels, with one empty row of
    data: a few dozen bytes that Pillow refuses as a decompression bomb when opened."""
    import zlib

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00"))
        + _png_chunk(b"IEND", b"")
    )


def _ztxt_bomb(side: int = 512) -> bytes:
    """A valid ``side`` x ``side`` PNG carrying a zTXt chunk that inflates to 4 MB (Pillow stops at 1 MB)."""
    import io
    import zlib

    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side), 255, np.uint8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    text = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * 4 * 2**20, 9))
    return png[:33] + text + png[33:]  # after IHDR (8 + 25 bytes), before the image data


def _lying_deflate_tiff() -> bytes:
    """A deflate TIFF whose header is sound but whose compressed strips are noise: it probes
    fine and fails only when a slice is decoded."""
    data = bytearray(_tiff_bytes(_stack((2, 64, 64)), compression="zlib"))
    with tifffile.TiffFile(__import__("io").BytesIO(bytes(data))) as tif:
        for page in tif.pages:
            for offset, count in zip(page.dataoffsets, page.databytecounts):
                noise = np.random.default_rng(offset).integers(0, 256, count, np.uint8)
                data[offset : offset + count] = noise.tobytes()
    return bytes(data)


def _reads_and_uploads(target: Path) -> None:
    reads = target / "reads"
    reads.mkdir()
    (reads / "lying-deflate.tif").write_bytes(_lying_deflate_tiff())
    uploads = target / "uploads"
    uploads.mkdir()
    (uploads / "png-bomb.png").write_bytes(_png_bomb())
    (uploads / "ztxt-bomb.png").write_bytes(_ztxt_bomb())


def build_corpus(target: Path = HERE) -> list[Path]:
    """(Re)write the corpus under ``target``; returns the files written."""
    for sub in ("volumes", "setup", "reads", "uploads"):
        shutil.rmtree(target / sub, ignore_errors=True)
    _volumes(target)
    _reads_and_uploads(target)
    _setup_files(target)
    (target / "hostile_names.json").write_text(
        json.dumps(HOSTILE_NAMES, indent=2, ensure_ascii=True) + "\n", encoding="utf-8"
    )
    return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix != ".py")


if __name__ == "__main__":
    for path in build_corpus():
        print(f"{path.stat().st_size:>8}  {path.relative_to(HERE)}")
