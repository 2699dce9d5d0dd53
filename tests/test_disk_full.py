"""A full disk while a job writes fails the job cleanly: its state says why, nothing partial is
published, and every earlier output and catalog row stays as it was.

Two ways to fill the disk, both real: a small tmpfs mounted over the data folder's
``segmentations/`` (needs permission to mount; skipped with the reason otherwise), so the label
volume itself hits "No space left on device"; and a file-size limit (RLIMIT_FSIZE) on the job's
process, which needs no privileges and stops the job while it saves its blocks. The label writer
is also checked on its own: a failed overwrite keeps the previous file and leaves no temporary.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from biosegment.catalog import open_catalog, refresh
from job_fixtures import DEMO_DATASET, REPO, TINY_MODEL, biosegment_env, make_folder


def segment(root: Path, name: str, *, file_size_limit: int | None = None):
    """``biosegment segment --wait`` in its own process; returns (exit status, job row)."""

    def limit():
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "biosegment",
            "--config",
            str(root / "biosegment.toml"),
            "segment",
            DEMO_DATASET,
            "--model",
            TINY_MODEL,
            "--name",
            name,
            "--wait",
            "--json",
        ],
        cwd=str(REPO),
        env=biosegment_env(),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    with open_catalog(root) as catalog:
        job = next(j for j in catalog.jobs(limit=50) if j["params"].get("name") == name)
    return proc.returncode, job


def fingerprint(root: Path) -> dict:
    """The first segmentation's bytes and catalog row (as a refresh leaves it), which nothing
    may change."""
    folder = root / "segmentations" / DEMO_DATASET / "first"
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        row = catalog.segmentation(DEMO_DATASET, "first")
    return {
        "files": {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
        },
        "row": row,
    }


def visible_outputs(root: Path) -> list[str]:
    return sorted(
        e for e in os.listdir(root / "segmentations" / DEMO_DATASET) if not e.startswith(".")
    )


def assert_nothing_published(root: Path, name: str) -> None:
    assert visible_outputs(root) == ["first"]
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        names = {s["name"] for s in catalog.segmentations(DEMO_DATASET)}
    assert name not in names
    for staging in (root / "segmentations" / DEMO_DATASET).glob(f".{name}.*"):
        assert not (staging / "labels.tif").exists(), "a partial result sits ready to publish"


@pytest.fixture
def folder(tmp_path) -> Path:
    root, _ = make_folder(tmp_path)
    return root


def mount_tmpfs(where: Path, size: str) -> None:
    if shutil.which("mount") is None:
        pytest.skip("the mount program is not installed (Debian package mount)")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(
            "mounting a tmpfs needs root or CAP_SYS_ADMIN: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )


@pytest.fixture
def small_disk(folder):
    """``segmentations/`` on a 256 KiB tmpfs: room for one demo segmentation, not two."""
    target = folder / "segmentations"
    mount_tmpfs(target, "256k")
    try:
        yield folder, target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_a_full_disk_fails_the_job_and_keeps_the_earlier_output(small_disk):
    root, mount = small_disk
    status, first = segment(root, "first")
    assert status == 0 and first["state"] == "succeeded", first["message"]
    before = fingerprint(root)

    status, second = segment(root, "second")

    assert status == 1 and second["state"] == "failed"
    assert "No space left on device" in second["message"], second["message"]
    assert "No space left on device" in Path(root / second["log_path"]).read_text()
    assert_nothing_published(root, "second")
    assert fingerprint(root) == before

    # With room again, a retry of the job publishes it whole, beside the first.
    subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
    retried = subprocess.run(
        [
            sys.executable,
            "-m",
            "biosegment",
            "--config",
            str(root / "biosegment.toml"),
            "retry",
            second["id"],
            "--wait",
            "--json",
        ],
        cwd=str(REPO),
        env=biosegment_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    with open_catalog(root) as catalog:
        retry_row = next(
            j for j in catalog.jobs(limit=50) if j["params"].get("retry_of") == second["id"]
        )
    assert retry_row["state"] == "succeeded", retry_row["message"]
    assert visible_outputs(root) == ["first", "second"]
    assert tifffile.imread(
        root / "segmentations" / DEMO_DATASET / "second" / "labels.tif"
    ).shape == (5, 512, 512)
    assert fingerprint(root) == before


def test_a_file_size_limit_while_saving_blocks_fails_the_job_cleanly(folder):
    status, first = segment(folder, "first")
    assert status == 0 and first["state"] == "succeeded", first["message"]
    before = fingerprint(folder)

    # 400 KB: the catalog, logs and queue fit; one block of 5x512x512 class ids does not.
    status, second = segment(folder, "second", file_size_limit=400_000)

    assert status == 1 and second["state"] == "failed", second
    assert second["message"], "a failed job says why"
    assert second["finished_at"] is not None
    assert_nothing_published(folder, "second")
    assert fingerprint(folder) == before
    with open_catalog(folder) as catalog:
        assert catalog.jobs_in_state("running") == [] and catalog.jobs_in_state("queued") == []


_OVERWRITE = r"""
import resource, sys
import numpy as np
from biosegment.volumes import LabelVolumeWriter
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    with LabelVolumeWriter(sys.argv[1], (8, 256, 256), compression=None) as writer:
        for z in range(8):
            writer.write_slice(z, np.full((256, 256), 7, np.uint8))
except OSError as exc:
    print(type(exc).__name__, exc, *getattr(exc, "__notes__", []))
    sys.exit(3)
"""


def test_a_label_writer_that_runs_out_of_room_keeps_the_previous_file(tmp_path):
    target = tmp_path / "labels.tif"
    tifffile.imwrite(target, np.ones((2, 64, 64), np.uint8))
    previous = target.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIOSEGMENT")}
    proc = subprocess.run(
        [sys.executable, "-c", _OVERWRITE, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "labels.tif" in proc.stdout, "the error names the file it could not write"
    assert target.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif"], "temporary left behind"
