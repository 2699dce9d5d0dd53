"""Probing and opening a 2 GB TIFF reads headers only: fast, few bytes read, little memory.

The file is sparse (header and page table written, pixels left as a hole), so creating it is
instant and any full read would show up as time, read bytes and resident memory.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import tifffile

from biosegment.volumes import open_volume, probe_volume

SHAPE = (512, 2048, 2048)  # 2 GiB of uint8
LINUX_PROC = Path("/proc/self/io").exists() and Path("/proc/self/statm").exists()


def _bytes_read_so_far() -> int:
    """Bytes this process has asked read() for (counts page-cache hits too, unlike disk I/O)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _filesystem_makes_sparse_files(folder: Path) -> bool:
    probe = folder / "sparse-check"
    with open(probe, "wb") as handle:
        handle.seek(64 * 2**20)
        handle.write(b"\0")
    allocated = os.stat(probe).st_blocks * 512
    probe.unlink()
    return allocated < 2**20


@pytest.fixture()
def sparse_stack(tmp_path) -> Path:
    if sys.platform == "win32" or not _filesystem_makes_sparse_files(tmp_path):
        pytest.skip("the temporary folder's filesystem does not create sparse files")
    path = tmp_path / "big stack.tif"
    tifffile.imwrite(
        path,
        shape=SHAPE,
        dtype="uint8",
        imagej=True,
        metadata={"axes": "ZYX", "spacing": 50.0, "unit": "nm"},
        resolution=(0.25, 0.25),
    )
    assert path.stat().st_size > 2 * 2**30
    assert path.stat().st_blocks * 512 < 64 * 2**20, "the test file should be sparse"
    return path


def test_probing_a_2gb_file_is_fast_and_reads_headers_only(sparse_stack):
    before = _bytes_read_so_far() if LINUX_PROC else 0
    started = time.perf_counter()
    info = probe_volume(sparse_stack)
    elapsed = time.perf_counter() - started
    assert info.shape == SHAPE and info.dtype == "uint8" and info.file_type == "tif3d"
    assert info.voxel_size == pytest.approx((50.0, 4.0, 4.0))
    assert elapsed < 1.0, f"probing took {elapsed:.2f} s"
    if LINUX_PROC:
        read = _bytes_read_so_far() - before
        assert read < 1 * 2**20, f"probing read {read} bytes"


@pytest.mark.skipif(not LINUX_PROC, reason="needs /proc to measure reads and resident memory")
def test_opening_and_reading_one_slice_of_a_2gb_file_costs_one_slice(sparse_stack):
    resident_before = _resident_bytes()
    read_before = _bytes_read_so_far()
    started = time.perf_counter()
    with open_volume(sparse_stack) as reader:
        assert reader.is_memory_mapped
        plane = reader.read_slice(400)
        window = reader.read_block(100, 110, slice(0, 64), slice(0, 64))
    elapsed = time.perf_counter() - started
    assert plane.shape == SHAPE[1:] and not plane.any()
    assert window.shape == (10, 64, 64)
    assert _bytes_read_so_far() - read_before < 1 * 2**20
    # One slice copy (4 MiB) plus the mapped pages touched, with generous slack for the
    # allocator; a full read would add 2 GiB.
    grown = _resident_bytes() - resident_before
    assert grown < 64 * 2**20, f"resident memory grew by {grown} bytes"
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
