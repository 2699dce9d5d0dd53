"""`kill -9` while a segmentation is being written leaves no partial output where anyone looks,
and the job, picked up again, publishes one complete result.

The job runs in a real `biosegment segment --wait` process; the test watches the dataset's
segmentation folder and kills the process the moment the job's hidden staging folder appears,
that is while the label volume is being assembled and written. A second test kills a process
streaming a label volume over an existing one, early and after its last slice but before it
commits: the file at the final name is always the old one, whole, until a writer finishes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.errors import NotFoundError
from biosegment.paths import is_temporary_name
from job_fixtures import TINY_MODEL, job_row, make_folder, start_biosegment, stop_process, wait_for

STACK = "stack"
STACK_SHAPE = (24, 512, 512)


@pytest.fixture
def folder(tmp_path):
    root, config = make_folder(tmp_path)
    raw = root / "EM" / STACK / "raw"
    raw.mkdir(parents=True)
    volume = np.random.default_rng(3).integers(0, 256, STACK_SHAPE).astype(np.uint8)
    tifffile.imwrite(raw / f"{STACK}.tif", volume, photometric="minisblack")
    with open_catalog(root) as catalog:
        refresh(catalog, root)
    return root


def entries(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def registered_segmentations(root: Path) -> set[tuple[str, str]]:
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        return {
            (s["dataset"], s["name"]) for s in catalog.segmentations() if s["state"] != "missing"
        }


def test_kill_9_while_writing_a_segmentation_shows_nothing_then_resumes_whole(folder, tmp_path):
    output_parent = folder / "segmentations" / STACK
    job_process = start_biosegment(
        folder,
        "segment",
        STACK,
        "--model",
        TINY_MODEL,
        "--name",
        "out",
        "--wait",
        log=tmp_path / "job.log",
    )
    staging = wait_for(
        lambda: (
            [e for e in entries(output_parent) if e.startswith(".")]
            or job_process.poll() is not None
        ),
        timeout=180,
        interval=0.001,
    )
    os.kill(job_process.pid, signal.SIGKILL)
    job_process.wait(timeout=10)
    assert isinstance(staging, list), (
        "the job ended before writing began:\n" + (tmp_path / "job.log").read_text()
    )

    visible = [e for e in entries(output_parent) if not e.startswith(".")]
    assert visible == [], f"a killed job left {visible} where users and the scan look"
    assert (STACK, "out") not in registered_segmentations(folder)
    with open_catalog(folder) as catalog:
        job = next(j for j in catalog.jobs(limit=10) if j["params"].get("name") == "out")
    assert job["state"] == "running", "the kill came after the job had finished"

    worker = start_biosegment(folder, "worker", log=tmp_path / "worker.log")
    try:
        finished = wait_for(
            lambda: job_row(folder, job["id"])["state"] in ("succeeded", "failed"),
            timeout=180,
            interval=0.1,
        )
    finally:
        stop_process(worker)
    row = job_row(folder, job["id"])
    assert finished and row["state"] == "succeeded", (
        row["message"],
        (tmp_path / "worker.log").read_text(),
    )
    assert entries(output_parent) == ["out"], "the staging folder is gone once published"
    assert entries(output_parent / "out") == ["labels.tif", "segmentation.json"]
    labels = tifffile.imread(output_parent / "out" / "labels.tif")
    assert labels.shape == STACK_SHAPE and labels.dtype == np.uint8
    assert (STACK, "out") in registered_segmentations(folder)


_STREAMER = r"""
import sys
import numpy as np
from biosegment.volumes import LabelVolumeWriter
path, value = sys.argv[1], int(sys.argv[2])
with LabelVolumeWriter(path, (40, 256, 256), compression=None) as writer:
    for z in range(40):
        writer.write_slice(z, np.full((256, 256), value, np.uint8))
        print("slice", z, flush=True)
        sys.stdin.readline()    # the test says when to go on, so it can kill at any slice
print("committed", flush=True)
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stream(target: Path, value: int, *, kill_after_slice: int | None) -> bool:
    """Write a volume of ``value`` over ``target``; kill -9 after that slice (None: let it
    finish). Returns whether the writer committed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOSEGMENT")}
    writer = subprocess.Popen(
        [sys.executable, "-c", _STREAMER, str(target), str(value)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in writer.stdout:
        if line.startswith("slice") and int(line.split()[1]) == kill_after_slice:
            os.kill(writer.pid, signal.SIGKILL)
            break
        writer.stdin.write("\n")
        writer.stdin.flush()
    writer.wait(timeout=30)
    return writer.returncode == 0


@pytest.mark.parametrize("kill_after_slice", [5, 39])
def test_kill_9_mid_write_never_leaves_a_partial_file_at_the_final_name(tmp_path, kill_after_slice):
    target = tmp_path / "labels.tif"
    assert stream(target, 1, kill_after_slice=None)
    committed = digest(target)

    assert not stream(target, 2, kill_after_slice=kill_after_slice)

    assert digest(target) == committed, "the final name holds something never committed"
    whole = tifffile.imread(target)
    assert whole.shape == (40, 256, 256) and set(np.unique(whole)) == {1}
    # What a killed writer leaves behind is a hidden temporary the scan ignores.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != target.name]
    assert leftovers and all(is_temporary_name(name) for name in leftovers), leftovers
    # The next writer that finishes replaces the file whole.
    assert stream(target, 3, kill_after_slice=None)
    assert set(np.unique(tifffile.imread(target))) == {3}


def test_the_scan_never_registers_a_staging_folder_or_a_temporary_file(folder):
    """What a killed job leaves behind is invisible to the catalog, however it looks inside."""
    parent = folder / "segmentations" / STACK
    staging = parent / ".out.deadbeef.tmp"
    staging.mkdir(parents=True)
    tifffile.imwrite(staging / "labels.tif", np.zeros(STACK_SHAPE, np.uint8))
    (parent / "real").mkdir()
    (parent / "real" / ".labels.tif.123-abcd.part").write_bytes(b"II*\x00" + bytes(100))
    assert registered_segmentations(folder) == set()
    with open_catalog(folder) as catalog, pytest.raises(NotFoundError):
        catalog.segmentation(STACK, ".out.deadbeef.tmp")
