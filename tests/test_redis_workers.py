"""Scale-out: a real redis-server and two ``biosegment worker`` processes share one segmentation.

redis-server (the Debian package) is started on 127.0.0.1 on a free port; the data folder's
config points ``[queue] url`` at it. One segmentation split into z-blocks must be computed by
both workers, and its labels must equal a single-process run of the same job.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import tifffile

from biosegment.daemon import live_runners
from biosegment.tasks import JobService, make_huey
from job_fixtures import (
    DEMO_DATASET,
    TINY_MODEL,
    free_port,
    job_row,
    make_folder,
    run_biosegment,
    start_biosegment,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.redis

BLOCK_RUNNER = re.compile(r"block \d+: attempt \d+ on (\S+)$")


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server not installed (Debian package redis-server; see "
            "packaging/system-packages.txt)"
        )
    import redis

    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    assert wait_for(answers, timeout=20), "redis-server did not start"
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


def test_two_workers_share_one_split_segmentation(tmp_path, redis_url):
    root, config = make_folder(tmp_path / "shared", queue_url=redis_url)
    assert type(make_huey(config)).__name__ == "RedisHuey"
    workers = [start_biosegment(root, "worker", log=tmp_path / f"worker{i}.log") for i in (1, 2)]
    try:
        assert wait_for(
            lambda: (
                len([o for o in live_runners(root) if str(o.get("identity")).endswith(":worker")])
                == 2
            ),
            timeout=60,
        ), [p.poll() for p in workers]
        service = JobService(config)
        try:
            job = service.submit_segment(DEMO_DATASET, TINY_MODEL, block_z=1)
            final = wait_for(
                lambda: (
                    lambda r: r if r["state"] in ("succeeded", "failed", "cancelled") else None
                )(job_row(root, job["id"])),
                timeout=180,
                interval=0.1,
            )
            log = service.job_log(job["id"])
        finally:
            service.close()
        assert final and final["state"] == "succeeded", (final, log)
        runners = {m.group(1) for line in log.splitlines() if (m := BLOCK_RUNNER.search(line))}
        pids = {str(p.pid) for p in workers}
        assert {r.split(":")[1] for r in runners} == pids, f"blocks ran on {runners}"
    finally:
        codes = [stop_process(p, timeout=60) for p in workers]
    assert codes == [0, 0], [(tmp_path / f"worker{i}.log").read_text()[-2000:] for i in (1, 2)]

    # The same job in one process, in a folder of its own: identical labels.
    single_root, _ = make_folder(tmp_path / "single")
    result = run_biosegment(
        single_root, "segment", DEMO_DATASET, "--model", TINY_MODEL, "--wait", timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "running here" in result.stderr
    shared = tifffile.imread(root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif")
    single = tifffile.imread(
        single_root / "segmentations" / DEMO_DATASET / TINY_MODEL / "labels.tif"
    )
    assert shared.shape == (5, 512, 512)
    np.testing.assert_array_equal(shared, single)
