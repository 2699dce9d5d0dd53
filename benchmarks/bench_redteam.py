"""Red-team replay: abusive requests against a running BioSegment, and whether the server holds.

Each probe replays one way of exhausting the machine or stalling the server (the items of the
"no request can exhaust the machine" hardening round) against the real daemon and web UI,
started here as a child process (``python -m biosegment --config ... run --headless``) on a
fresh data folder in a temporary directory, listening on 127.0.0.1 (the accounts probes use
another loopback address, 127.0.0.2 by default, because only there does BioSegment ask for a
login). The probe fires its request ``--parallel`` times at once (10 by default) from threads,
with bounded loops and timeouts, while

- a watcher thread asks ``GET /api/v1/datasets`` every 200 ms and records how long each answer
  took (a request the server does not answer counts as the watcher's 5 s timeout), and
- a sampler reads the resident set (``VmRSS`` in ``/proc/<pid>/status``) of the server and every
  process under it every 100 ms; past ``--kill-mb`` the script kills the server, so a probe
  that would take the machine down only fails.

The probe's answers come first; where its harm happens in a job (``train_oversized``,
``segment_zoom``) the server is then watched until it has used ``--job-cpu-s`` seconds of CPU
(not wall time: on a shared machine a job's memory grows with the CPU it gets) or has no job
left, at most ``job_watch_max_s``; the others are watched a few seconds more.

A probe **held** when every watcher request was answered within 1 s, the server's peak RSS
stayed under 1.5 GB, and the probe's own answers were the expected refusal or a bounded answer.
It **failed** otherwise, with the reason; **error** means the probe could not be set up (a bug
here, or a server that would not start), never a verdict on the server.

Probes (``--probes`` takes a comma-separated subset of these names):

- ``train_oversized`` (item 8): a scratch training with crop_size 4096, batch_size 1024,
  feature_maps 256, levels 8 must be refused at request time (4xx).
- ``segment_zoom`` (item 9): a 3 x 4096 x 4096 dataset whose setup.json voxel size
  [50, 133, 133] zooms it ~10x for the demo model, segmented: memory must stay bounded.
- ``steps_large`` (item 10): ``GET /jobs/<id>/steps`` of a finished train job whose
  steps.jsonl has 2 M lines: bounded answers (under 8 MB), bounded memory.
- ``text_plain_deep``, ``text_plain_big`` (item 11): 100 000 nested ``[`` and a 60 MB body,
  sent as ``Content-Type: text/plain`` to ``POST /api/v1/jobs/train``: 4xx, never 500.
- ``slowloris`` (item 12): 150 sockets that each send one request line and wait.
- ``tiff_bomb`` (item 13): tiles of a 1 MB single-strip zlib TIFF that claims 30000 x 30000.
- ``model_zip_bomb`` (item 14): ``biosegment models import`` of a ~3 MB package whose weights
  member unpacks to 3 GiB (a child process per import, ``--import-parallel`` of them; their
  own peak RSS must stay under 1.5 GB too, and the import must be refused).
- ``live_tiles`` (item 15): a fine-tune on a 4096 x 4096 dataset; its live-preview tiles
  must appear before ``--tile-deadline`` seconds.
- ``train_coerced``: ``"minutes": true``, ``"minutes": "3"``, ``"epochs": "3"``,
  ``"crop_size": 100`` must each be a 400 naming the field.
- ``login_throttle`` (accounts): 40 parallel failed logins from one address; at most 20 may be
  checked (401), the rest must be throttled (429).
- ``viewer_text_plain`` (accounts): a viewer's API token posting 100 000 nested ``[`` as
  text/plain to ``POST /api/v1/auth/tokens``: 4xx, never 500.

Every input is made here, in the temporary folder, which is deleted at the end (nothing else is
touched). Only loopback addresses are used. A full run takes about 10 minutes on 2 busy cores
(``live_tiles`` alone up to 4); ``--quick`` shortens the observation windows, ``--probes`` runs
a subset, and no probe starts after ``--budget-s`` seconds.

    python benchmarks/bench_redteam.py [--probes NAME,...] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import ipaddress
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cpu_facts import cpu_model_and_flags  # noqa: E402  (beside this script)

from biosegment.accounts import open_accounts  # noqa: E402
from biosegment.catalog import open_catalog, refresh  # noqa: E402
from biosegment.config import load_config  # noqa: E402
from biosegment.datafolder import DEMO_DATASET, init_data_folder  # noqa: E402
from biosegment.tasks.workspace import JobWorkspace  # noqa: E402
from biosegment.volumes import annotation_slice_name, write_png_slice  # noqa: E402

__all__ = ["main", "PROBES"]

MB = 2**20
#: What the server must stay under, and how fast other requests must be answered.
RSS_TARGET_MB = 1500
LATENCY_TARGET_S = 1.0
#: The watcher's request; a request it waits on longer than this counts as this long.
WATCH_PATH = "/api/v1/datasets"
WATCH_INTERVAL_S = 0.2
WATCH_TIMEOUT_S = 5.0
RSS_INTERVAL_S = 0.1
#: Answers are read up to this size; a longer one is itself unbounded.
MAX_ANSWER = 8 * MB
DEMO_MODEL = "demo-membrane"
BIG = "big4k"  # the 3 x 4096 x 4096 dataset
BOMB = "bomb"  # the single-strip TIFF that claims 30000 x 30000
STROKES = "strokes"  # the annotation the live-tiles fine-tune learns from
PASSWORD = "a long enough password for the red team"


# -- HTTP ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    """One answer: an HTTP status, or ``timeout``/``refused``/``reset`` when there was none."""

    status: int | str
    body: bytes = b""
    seconds: float = 0.0
    truncated: bool = False
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error(self) -> str:
        document = self.json()
        if isinstance(document, dict) and document.get("error"):
            return str(document["error"])[:160]
        return self.body[:160].decode("utf-8", "replace")


def call(
    address: tuple[str, int],
    method: str,
    path: str,
    *,
    body: bytes | bytearray | None = None,
    headers: dict | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request on its own connection; the answer is read up to :data:`MAX_ANSWER`."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        try:
            connection.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before reading all of a big body: read that answer
        response = connection.getresponse()
        pieces, size = [], 0
        while size <= MAX_ANSWER:  # in small pieces: a big answer must not cost this script
            piece = response.read(64 * 1024)
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
        data = b"".join(pieces)
        return Reply(
            response.status,
            data[:MAX_ANSWER],
            time.monotonic() - started,
            len(data) > MAX_ANSWER,
            response.getheaders(),
        )
    except TimeoutError:
        return Reply("timeout", seconds=time.monotonic() - started)
    except ConnectionRefusedError:
        return Reply("refused", seconds=time.monotonic() - started)
    except (http.client.HTTPException, OSError):
        return Reply("reset", seconds=time.monotonic() - started)
    finally:
        connection.close()


def in_parallel(function: Callable, arguments: Sequence) -> list:
    """``function`` applied to every argument at once, one thread each, results in order."""
    with ThreadPoolExecutor(max(1, len(arguments))) as pool:
        return list(pool.map(function, arguments))


# -- memory of a process tree ---------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str]:
    """``/proc/<pid>/stat`` after the command name (field 3, the state, comes first)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        fields = _stat_fields(entry.name) if entry.name.isdigit() else []
        if fields:
            parents[int(entry.name)] = int(fields[1])
    return parents


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the daemon's workers, if it starts any)."""
    parents = _parents()
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _status_mb(pid: int, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """A process's resident set now (0 when it is gone)."""
    return _status_mb(pid, "VmRSS")


def high_water_mb(pid: int) -> float:
    """The largest resident set the process has had: catches peaks between two samples."""
    return _status_mb(pid, "VmHWM")


class RssSampler(threading.Thread):
    """The summed RSS of a process tree every 100 ms: its peak, and a kill past ``kill_mb``."""

    def __init__(self, pid: int, *, kill_mb: float, kill: Callable[[], None]):
        super().__init__(daemon=True)
        self.pid, self.kill_mb, self._kill = pid, kill_mb, kill
        self.peak_mb = 0.0
        self.cpu_s = 0.0  # CPU time the tree's processes have used (latest sample)
        self.killed_at_mb: float | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        pids, refreshed = [self.pid], 0.0
        while not self._stop_event.is_set():
            # new children are rare and a scan of /proc is not free: look twice a second
            if time.monotonic() - refreshed > 0.5:
                pids, refreshed = process_tree(self.pid), time.monotonic()
            total = sum(rss_mb(pid) for pid in pids)
            self.cpu_s = max(self.cpu_s, sum(cpu_seconds(pid) for pid in pids))
            self.peak_mb = max(self.peak_mb, total, high_water_mb(self.pid))
            if total > self.kill_mb and self.killed_at_mb is None:
                self.killed_at_mb = total
                self._kill()
            self._stop_event.wait(RSS_INTERVAL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


class Watcher(threading.Thread):
    """A cheap GET every 200 ms, as a person's browser would send, timed."""

    def __init__(self, address: tuple[str, int], headers: dict):
        super().__init__(daemon=True)
        self.address, self.headers = address, headers
        self.samples: list[tuple[int | str, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            reply = call(
                self.address, "GET", WATCH_PATH, headers=self.headers, timeout=WATCH_TIMEOUT_S
            )
            self.samples.append((reply.status, reply.seconds))
            self._stop_event.wait(max(0.0, WATCH_INTERVAL_S - reply.seconds))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(WATCH_TIMEOUT_S + 2)

    @property
    def worst_s(self) -> float:
        return max((seconds for _, seconds in self.samples), default=0.0)

    def problems(self) -> list[str]:
        found = []
        slow = [s for _, s in self.samples if s >= LATENCY_TARGET_S]
        if slow:
            found.append(
                f"{len(slow)} of {len(self.samples)} watcher GETs took >= {LATENCY_TARGET_S:.0f} s "
                f"(worst {max(slow):.1f} s)"
            )
        refused = collections.Counter(str(s) for s, _ in self.samples if s != 200)
        if refused:
            found.append("watcher got " + ", ".join(f"{k} x{n}" for k, n in refused.items()))
        return found


# -- the server under test --------------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def child_environment() -> dict:
    """This environment minus BioSegment's own settings, with this checkout importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BIOSEGMENT") and k != "ROOT_DATA_FOLDER"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Server:
    """``biosegment run --headless`` on ``root``, in its own process group."""

    def __init__(self, root: Path, work: Path, host: str, headers: dict):
        self.root, self.host, self.headers = root, host, headers
        self.port = free_port(host)
        self.config = work / "biosegment.toml"
        self.config.write_text(
            f'data_dir = "{root.as_posix()}"\n\n[server]\nhost = "{host}"\nport = {self.port}\n'
            '\n[log]\nlevel = "WARNING"\n',
            encoding="utf-8",
        )
        self.log = work / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "biosegment", "--config", str(self.config), *args]

    def start(self, timeout: float = 180.0) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command("run", "--headless"),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                env=child_environment(),
                start_new_session=True,  # its own process group: killed as one, nothing else
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): {self.log_tail()}")
            if self.get(WATCH_PATH, timeout=5).status == 200:
                return
            time.sleep(0.3)
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-1500:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, *, timeout: float = 30.0) -> Reply:
        return call(self.address, "GET", path, headers=self.headers, timeout=timeout)

    def post_json(self, path: str, document: dict, *, timeout: float = 30.0) -> Reply:
        headers = {**self.headers, "Content-Type": "application/json"}
        return call(
            self.address,
            "POST",
            path,
            body=json.dumps(document).encode(),
            headers=headers,
            timeout=timeout,
        )

    def wait_dataset(self, name: str, timeout: float = 90.0, *, settled=("ok",)) -> dict:
        """The dataset's catalog row once its state is one of ``settled``."""
        deadline = time.monotonic() + timeout
        reply = Reply("timeout")
        while time.monotonic() < deadline:
            reply = self.get(f"/api/v1/datasets/{name}", timeout=10)
            row = reply.json() if reply.status == 200 else None
            if isinstance(row, dict) and row.get("state") in settled:
                return row
            time.sleep(0.5)
        raise RuntimeError(f"dataset {name} was not registered: {reply.status} {reply.error()}")

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def active_jobs(self) -> list[dict]:
        """The queued and running jobs."""
        jobs: list[dict] = []
        for state in ("running", "queued"):
            reply = self.get(f"/api/v1/jobs?state={state}", timeout=10)
            jobs += (reply.json() if reply.status == 200 else None) or []
        return jobs

    def cancel_jobs(self) -> None:
        """Cancel every queued or running job, so that a stop does not wait for them."""
        for job in self.active_jobs():
            call(
                self.address,
                "POST",
                f"/api/v1/jobs/{job['id']}/cancel",
                headers=self.headers,
                timeout=10,
            )

    def stop(self) -> None:
        """Stop as a person would (SIGTERM), then harder when it does not go."""
        if self.proc is None:
            return
        if self.alive():
            self.cancel_jobs()
            for signum, wait in ((signal.SIGTERM, 20), (signal.SIGTERM, 5), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signum)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # workers it may have left behind in its group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# -- adversarial inputs, made once per run ----------------------------------------------------


class Inputs:
    """The big files, written on first use into ``folder`` and linked into data folders."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _made(self, name: str, make: Callable[[Path], None]) -> Path:
        path = self.folder / name
        if not path.exists():
            partial = path.with_name(path.name + ".part")
            make(partial)
            partial.rename(path)
        return path

    def tiff_bomb(self) -> Path:
        """A 1 MB TIFF: one 30000 x 30000 page of zeros in a single zlib strip."""

        def make(path: Path) -> None:
            # np.zeros maps the kernel's zero page: 900 MB that cost no memory to compress
            tifffile.imwrite(
                path,
                np.zeros((30000, 30000), np.uint8),
                compression="zlib",
                photometric="minisblack",
                rowsperstrip=30000,
            )

        return self._made("bomb.tif", make)

    def big_stack(self) -> Path:
        """3 x 4096 x 4096 uint8 of EM-like blobs with noise."""

        def make(path: Path) -> None:
            rng = np.random.default_rng(22)
            stack = np.empty((3, 4096, 4096), np.uint8)  # 48 MB; one series of 3 pages
            for z in range(3):
                blobs = rng.integers(0, 200, (256, 256), dtype=np.uint8)
                stack[z] = np.repeat(np.repeat(blobs, 16, axis=0), 16, axis=1)
                stack[z] += rng.integers(0, 40, (4096, 4096), dtype=np.uint8)
            tifffile.imwrite(path, stack, photometric="minisblack")

        return self._made("big-raw.tif", make)

    def zip_bomb(self) -> Path:
        """A ~3 MB bioimage.io package whose ``weights.pt`` unpacks to 3 GiB of zeros."""

        def make(path: Path) -> None:
            rdf = (
                "type: model\nformat_version: 0.5.3\nname: redteam-bomb\n"
                "weights:\n  pytorch_state_dict:\n    source: weights.pt\n"
            )
            chunk = bytes(MB)
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("rdf.yaml", rdf)
                with archive.open("weights.pt", "w", force_zip64=True) as member:
                    for _ in range(3 * 1024):  # written in 1 MB pieces: this script stays small
                        member.write(chunk)

        return self._made("bomb-package.zip", make)


def link_into(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# -- probes -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    parallel: int
    quick: bool
    kill_mb: float
    import_parallel: int
    tile_deadline_s: float
    settle_s: float
    job_cpu_s: float
    job_watch_max_s: float
    snapshot_wait_s: float


@dataclasses.dataclass
class Outcome:
    """What a probe saw of its own answers."""

    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    own_peak_mb: float = 0.0  # child processes of the probe itself (model imports)

    def count(self, replies: list[Reply]) -> None:
        self.statuses.update(str(r.status) for r in replies)


@dataclasses.dataclass
class Context:
    server: Server
    root: Path
    inputs: Inputs
    options: Options
    facts: dict


def expect_refusals(outcome: Outcome, replies: list[Reply], what: str) -> None:
    """Every reply must be a 4xx that is not a 404 (a 404 would mean the probe missed)."""
    outcome.count(replies)
    wrong = [r for r in replies if not (isinstance(r.status, int) and 400 <= r.status < 500)]
    missed = [r for r in replies if r.status == 404]
    if wrong:
        sample = wrong[0]
        outcome.problems.append(
            f"{len(wrong)} of {len(replies)} {what} answered {sample.status} "
            f"(expected a 4xx refusal): {sample.error()[:100]}"
        )
    if missed:
        outcome.problems.append(f"404 means the probe missed its target: {missed[0].error()}")
    refusals = [r for r in replies if isinstance(r.status, int) and 400 <= r.status < 500]
    if refusals:
        outcome.notes.append(f"refusal: {refusals[0].error()[:120]}")


def train_oversized(ctx: Context) -> Outcome:
    body = {
        "dataset": DEMO_DATASET,
        "base_model": "scratch",
        "crop_size": 4096,
        "batch_size": 1024,
        "feature_maps": 256,
        "levels": 8,
    }
    outcome = Outcome()
    replies = in_parallel(
        lambda _: ctx.server.post_json("/api/v1/jobs/train", body, timeout=60),
        range(ctx.options.parallel),
    )
    expect_refusals(outcome, replies, "oversized train requests")
    return outcome


def prepare_segment_zoom(root: Path, inputs: Inputs) -> dict:
    link_into(inputs.big_stack(), root / "EM" / BIG / "raw" / f"{BIG}.tif")
    setup_file = root / "setup.json"
    setup = json.loads(setup_file.read_text(encoding="utf-8"))
    setup.setdefault("datasets", []).append({"title": BIG, "voxel_size": [50, 133, 133]})
    setup_file.write_text(json.dumps(setup, indent=2), encoding="utf-8")
    return {"datasets": [BIG]}


def segment_zoom(ctx: Context) -> Outcome:
    outcome = Outcome()
    row = ctx.server.get(f"/api/v1/datasets/{BIG}").json() or {}
    if row.get("voxel_size") != [50, 133, 133]:
        outcome.notes.append(
            f"catalog voxel size {row.get('voxel_size')} (setup.json says 50/133/133)"
        )
    body = {"dataset": BIG, "model": DEMO_MODEL}
    replies = in_parallel(
        lambda _: ctx.server.post_json("/api/v1/jobs/segment", body, timeout=60),
        range(ctx.options.parallel),
    )
    outcome.count(replies)
    bad = [
        r
        for r in replies
        if not (
            r.status in (200, 202)
            or (isinstance(r.status, int) and 400 <= r.status < 500 and r.status != 404)
        )
    ]
    if bad:
        outcome.problems.append(f"segment request answered {bad[0].status}: {bad[0].error()}")
    # 200: an identical segmentation is already queued or running, and the answer is that job
    accepted = sorted({r.json()["id"] for r in replies if r.status in (200, 202)})
    if len(accepted) > 1:
        outcome.problems.append(f"{len(accepted)} jobs made for one identical request")
    if accepted:
        # The observation window counts from the moment a job runs, not from the request: on a
        # busy machine a job may wait a while for its worker, and a window spent queued shows
        # nothing about the memory it takes.
        waited = wait_until_running(ctx.server, accepted, timeout=90.0)
        outcome.notes.append(f"a job ran after {waited:.0f} s")
    return outcome


def wait_until_running(server: Server, job_ids: list[str], *, timeout: float) -> float:
    """Seconds until one of ``job_ids`` runs (or ended); raise when none did in ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        for job_id in job_ids:
            row = server.get(f"/api/v1/jobs/{job_id}", timeout=10).json() or {}
            if row.get("state") not in (None, "queued"):
                return time.monotonic() - started
        if not server.alive():
            raise RuntimeError("the server died before a job ran")
        time.sleep(0.5)
    raise RuntimeError(f"no job ran within {timeout:.0f} s")


def prepare_steps_large(root: Path, inputs: Inputs) -> dict:
    """A finished train job in the catalog whose steps.jsonl holds 2 M steps (about 110 MB)."""
    with open_catalog(root) as catalog:
        refresh(catalog, root)
        job = catalog.create_job("train", {"dataset": DEMO_DATASET, "name": "steps-probe"})
        catalog.update_job(job["id"], state="succeeded", progress=1.0)
    config = load_config(data_dir=root, env={}, cwd=root)
    steps_file = JobWorkspace.of(config, job["id"]).create().steps_file
    with open(steps_file, "w", encoding="utf-8") as handle:
        for start in range(0, 2_000_000, 100_000):
            handle.write(
                "".join(
                    f'{{"step": {step}, "loss": 0.{step % 1000000:06d}, "elapsed_s": {step / 50:.3f}}}\n'
                    for step in range(start + 1, start + 100_001)
                )
            )
    return {"job": job["id"]}


def steps_large(ctx: Context) -> Outcome:
    outcome = Outcome()
    job = ctx.facts["job"]
    afters = [1_999_990 if i % 2 else 0 for i in range(ctx.options.parallel)]
    replies = in_parallel(
        lambda after: ctx.server.get(f"/api/v1/jobs/{job}/steps?after={after}", timeout=60),
        afters,
    )
    outcome.count(replies)
    for after, reply in zip(afters, replies):
        if reply.status != 200:
            outcome.problems.append(f"after={after} answered {reply.status}: {reply.error()}")
            break
        if reply.truncated:
            outcome.problems.append(f"after={after} answered more than {MAX_ANSWER // MB} MB")
            break
    tail = next((r for a, r in zip(afters, replies) if a and r.status == 200), None)
    if tail is not None:
        document = tail.json() or {}
        outcome.notes.append(f"after=1999990 gave {len(document.get('steps') or [])} steps")
    sizes = [len(r.body) for r in replies if r.status == 200]
    if sizes:
        outcome.notes.append(f"largest answer {max(sizes) / MB:.1f} MB")
    return outcome


def _text_plain(
    ctx: Context, path: str, body: bytes | bytearray, what: str, headers: dict | None = None
) -> Outcome:
    outcome = Outcome()
    sent = {
        **(headers if headers is not None else ctx.server.headers),
        "Content-Type": "text/plain",
    }
    replies = in_parallel(
        lambda _: call(ctx.server.address, "POST", path, body=body, headers=sent, timeout=60),
        range(ctx.options.parallel),
    )
    expect_refusals(outcome, replies, what)
    return outcome


def text_plain_deep(ctx: Context) -> Outcome:
    return _text_plain(ctx, "/api/v1/jobs/train", b"[" * 100_000, "deeply nested bodies")


def text_plain_big(ctx: Context) -> Outcome:
    body = bytearray(b",1") * 30_000_000  # 60 MB, made once and shared by every thread
    body[0:1] = b"["
    body.append(ord("]"))
    try:
        return _text_plain(ctx, "/api/v1/jobs/train", body, "60 MB text/plain bodies")
    finally:
        del body


def slowloris(ctx: Context) -> Outcome:
    """150 sockets each send one request line and nothing more, for a while."""
    outcome = Outcome()
    sockets = []
    hold_s = 6.0 if ctx.options.quick else 12.0
    try:
        for _ in range(150):
            try:
                held = socket.create_connection(ctx.server.address, timeout=5)
                held.sendall(b"GET /api/v1/datasets HTTP/1.1\r\n")
                sockets.append(held)
            except OSError:
                outcome.statuses["connect-failed"] += 1
        time.sleep(hold_s)  # the watcher keeps asking meanwhile
        for held in sockets:
            held.setblocking(False)
            try:
                data = held.recv(64)
                outcome.statuses["answered" if data else "closed-by-server"] += 1
            except BlockingIOError:
                outcome.statuses["still-open"] += 1
            except OSError:
                outcome.statuses["closed-by-server"] += 1
    finally:
        for held in sockets:
            held.close()
    outcome.notes.append(f"{len(sockets)} partial requests held {hold_s:.0f} s")
    return outcome


def prepare_tiff_bomb(root: Path, inputs: Inputs) -> dict:
    link_into(inputs.tiff_bomb(), root / "EM" / f"{BOMB}.tif")
    return {"datasets_ok_or_refused": [BOMB]}


def tiff_bomb(ctx: Context) -> Outcome:
    outcome = Outcome()
    row = ctx.server.get(f"/api/v1/datasets/{BOMB}").json() or {}
    if row.get("state") == "error":
        outcome.notes.append(f"catalog refused it: {str(row.get('error'))[:120]}")
    tiles = [(i // 5, i % 5) for i in range(ctx.options.parallel)]
    replies = in_parallel(
        lambda rc: ctx.server.get(
            f"/api/v1/datasets/{BOMB}/tiles/raw/z/0/0/{rc[0]}/{rc[1]}.png", timeout=60
        ),
        tiles,
    )
    outcome.count(replies)
    bad = [
        r
        for r in replies
        if not (r.status in (200, 503) or (isinstance(r.status, int) and 400 <= r.status < 500))
    ]
    if bad:
        outcome.problems.append(f"a tile answered {bad[0].status}: {bad[0].error()[:100]}")
    refused = [r for r in replies if r.status != 200 and isinstance(r.status, int)]
    if refused:
        outcome.notes.append(f"refusal: {refused[0].error()[:120]}")
    outcome.notes.append(f"slowest tile {max(r.seconds for r in replies):.1f} s")
    return outcome


def model_zip_bomb(ctx: Context) -> Outcome:
    outcome = Outcome()
    package = ctx.inputs.zip_bomb()

    def one(i: int) -> tuple[str, float, float | None, str]:
        proc = subprocess.Popen(
            ctx.server.command("models", "import", str(package), "--name", f"bomb-{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_environment(),
            start_new_session=True,
        )

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        sampler = RssSampler(proc.pid, kill_mb=ctx.options.kill_mb, kill=kill)
        sampler.start()
        try:
            output, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            kill()
            output, _ = proc.communicate()
            return "timeout", sampler.peak_mb, sampler.killed_at_mb, ""
        finally:
            sampler.stop()
        last = (output or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return f"rc={proc.returncode}", sampler.peak_mb, sampler.killed_at_mb, last[0]

    results = in_parallel(one, list(range(ctx.options.import_parallel)))
    outcome.statuses.update(status for status, *_ in results)
    outcome.own_peak_mb = max(peak for _, peak, _, _ in results)
    for status, _, killed, _ in results:
        if killed is not None:
            outcome.problems.append(f"an import passed {killed:.0f} MB and was killed")
            break
        if status == "rc=0":
            outcome.problems.append("the package was imported")
            break
        if status == "timeout":
            outcome.problems.append("an import ran past 240 s")
            break
    if outcome.own_peak_mb >= RSS_TARGET_MB:
        outcome.problems.append(f"an import's RSS peaked at {outcome.own_peak_mb:.0f} MB")
    said = next((last for *_, last in results if last), "")
    outcome.notes.append(f"import peak {outcome.own_peak_mb:.0f} MB; said: {said[:120]}")
    return outcome


def prepare_live_tiles(root: Path, inputs: Inputs) -> dict:
    """The 4096 x 4096 dataset with a few painted strokes, as a person would fine-tune from."""
    link_into(inputs.big_stack(), root / "EM" / BIG / "raw" / f"{BIG}.tif")
    folder = root / "annotations" / BIG / STROKES
    folder.mkdir(parents=True)
    classes = [{"id": 0, "name": "background"}, {"id": 1, "name": "membrane"}]
    (folder / "annotation.json").write_text(json.dumps({"classes": classes}), encoding="utf-8")
    for z in range(3):
        strokes = np.full((4096, 4096), 255, np.uint8)
        for k in range(8):
            strokes[400 + 400 * k : 408 + 400 * k, 300:3800] = k % 2
        write_png_slice(folder / annotation_slice_name(z), strokes)
    return {"datasets": [BIG]}


def live_tiles(ctx: Context) -> Outcome:
    outcome = Outcome()
    server, options = ctx.server, ctx.options
    body = {
        "dataset": BIG,
        "annotation": STROKES,
        "base_model": DEMO_MODEL,
        "minutes": 10,
        "batch_size": 2,
        "crop_size": 128,
    }
    reply = server.post_json("/api/v1/jobs/train", body, timeout=60)
    if reply.status != 202:
        raise RuntimeError(f"the fine-tune was not accepted: {reply.status} {reply.error()}")
    job = (reply.json() or {})["id"]
    deadline = time.monotonic() + options.snapshot_wait_s
    while True:
        live = server.get(f"/api/v1/jobs/{job}/live", timeout=10).json() or {}
        if live.get("available"):
            break
        if live.get("state") not in ("queued", "running") or time.monotonic() > deadline:
            row = server.get(f"/api/v1/jobs/{job}").json() or {}
            raise RuntimeError(
                f"no live snapshot (job {row.get('state')}: {str(row.get('message'))[:200]})"
            )
        time.sleep(1)
    started = time.monotonic()
    tile_deadline = started + options.tile_deadline_s

    def tile(rc: tuple[int, int]) -> tuple[list[Reply], float | None]:
        path = f"/api/v1/jobs/{job}/live/tiles/z/1/0/{rc[0]}/{rc[1]}.png"
        replies: list[Reply] = []
        while time.monotonic() < tile_deadline:
            left = max(1.0, tile_deadline - time.monotonic())
            answer = server.get(path, timeout=left)
            replies.append(answer)
            if answer.status == 200:
                return replies, time.monotonic() - started
            if answer.status not in (503, "timeout"):
                break
            time.sleep(0.5)
        return replies, None

    results = in_parallel(tile, [(i // 4, i % 4) for i in range(options.parallel)])
    missed = [replies[-1] for replies, _ in results if replies and replies[-1].status == 404]
    if missed:
        raise RuntimeError(f"the probe asked for no tile: {missed[0].error()}")
    for replies, _ in results:
        outcome.count(replies)
    shown = [seconds for _, seconds in results if seconds is not None]
    if len(shown) < len(results):
        last = next(replies[-1] for replies, seconds in results if seconds is None and replies)
        outcome.problems.append(
            f"{len(results) - len(shown)} of {len(results)} live tiles never appeared within "
            f"{options.tile_deadline_s:.0f} s (last answer {last.status}: {last.error()[:80]})"
        )
    if shown:
        outcome.notes.append(f"first tile after {min(shown):.1f} s, last after {max(shown):.1f} s")
    return outcome


def train_coerced(ctx: Context) -> Outcome:
    outcome = Outcome()
    bad_fields = [
        ("minutes", True),
        ("minutes", "3"),
        ("epochs", "3"),
        ("crop_size", 100),
        ("batch_size", "4"),
    ]
    cases = [bad_fields[i % len(bad_fields)] for i in range(ctx.options.parallel)]
    replies = in_parallel(
        lambda case: ctx.server.post_json(
            "/api/v1/jobs/train", {"dataset": DEMO_DATASET, case[0]: case[1]}, timeout=60
        ),
        cases,
    )
    outcome.count(replies)
    wrong = sorted(
        {f"{k}={v!r} -> {r.status}" for (k, v), r in zip(cases, replies) if r.status != 400}
    )
    if wrong:
        outcome.problems.append("not refused: " + ", ".join(wrong))
    unnamed = sorted(
        {
            f"{k}={v!r}"
            for (k, v), r in zip(cases, replies)
            if r.status == 400 and k not in str((r.json() or {}).get("field"))
        }
    )
    if unnamed:
        outcome.problems.append("400 without naming the field: " + ", ".join(unnamed))
    return outcome


def prepare_accounts(root: Path, inputs: Inputs) -> dict:
    with open_accounts(root) as accounts:
        accounts.add_user("redteam-admin", "admin", PASSWORD)
        accounts.add_user("redteam-viewer", "viewer", PASSWORD)
        admin_token, _ = accounts.create_token("redteam-admin", "watcher")
        viewer_token, _ = accounts.create_token("redteam-viewer", "probe")
    return {"admin_token": admin_token, "viewer_token": viewer_token}


def _cookies(reply: Reply) -> str:
    return "; ".join(
        value.split(";", 1)[0] for name, value in reply.headers if name.lower() == "set-cookie"
    )


def login_throttle(ctx: Context) -> Outcome:
    """40 failed logins at once from one address (each with its own login form)."""
    outcome = Outcome()
    forms = []
    for _ in range(40):
        form = call(ctx.server.address, "GET", "/login", timeout=30)
        token = re.search(rb'name="csrf_token" value="([^"]+)"', form.body)
        if form.status != 200 or token is None:
            raise RuntimeError(f"no login form: {form.status} {form.error()}")
        forms.append((_cookies(form), token.group(1).decode()))
    gate = threading.Barrier(len(forms))

    def attempt(form: tuple[str, str]) -> Reply:
        cookie, token = form
        body = urlencode({"csrf_token": token, "name": "nobody-here", "password": "wrong guess"})
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(30)
        # "busy" (503: every password-check slot taken) checked and counted nothing: a
        # guessing script tries again, a bounded number of times
        for _ in range(100):
            reply = call(ctx.server.address, "POST", "/login", body=body.encode(), headers=headers)
            if reply.status != 503:
                return reply
            time.sleep(0.05)
        return reply

    replies = in_parallel(attempt, forms)
    outcome.count(replies)
    checked = sum(r.status == 401 for r in replies)
    if checked > 20:
        outcome.problems.append(f"{checked} of 40 attempts were checked (limit 20)")
    other = [r.status for r in replies if r.status not in (401, 429)]
    if other:
        outcome.problems.append(f"unexpected answers {collections.Counter(other)}")
    return outcome


def viewer_text_plain(ctx: Context) -> Outcome:
    viewer = {"Authorization": f"Bearer {ctx.facts['viewer_token']}"}
    return _text_plain(
        ctx, "/api/v1/auth/tokens", b"[" * 100_000, "viewer's nested bodies", headers=viewer
    )


def job_summary(server: Server) -> list[str]:
    """The jobs the probe left, by state, and what the first one says (its progress or error)."""
    reply = server.get("/api/v1/jobs", timeout=10)
    jobs = reply.json() if reply.status == 200 else None
    if not jobs:
        return []
    states = collections.Counter(job["state"] for job in jobs)
    first = jobs[-1]  # newest first: the last is the first submitted
    said = str(first.get("message") or "")[:120]
    return [
        "jobs "
        + ", ".join(f"{state} x{n}" for state, n in states.items())
        + f"; first: {first['state']} {float(first.get('progress') or 0):.0%} {said}"
    ]


@dataclasses.dataclass(frozen=True)
class Probe:
    name: str
    item: str
    fire: Callable[[Context], Outcome]
    prepare: Callable[[Path, Inputs], dict] | None = None
    runs_jobs: bool = False  # observe longer after the requests: the work happens in a job
    accounts: bool = False


PROBES = [
    Probe("train_oversized", "8", train_oversized, runs_jobs=True),
    Probe("segment_zoom", "9", segment_zoom, prepare_segment_zoom, runs_jobs=True),
    Probe("steps_large", "10", steps_large, prepare_steps_large),
    Probe("text_plain_deep", "11", text_plain_deep),
    Probe("text_plain_big", "11", text_plain_big),
    Probe("slowloris", "12", slowloris),
    Probe("tiff_bomb", "13", tiff_bomb, prepare_tiff_bomb),
    Probe("model_zip_bomb", "14", model_zip_bomb),
    Probe("live_tiles", "15", live_tiles, prepare_live_tiles),
    Probe("train_coerced", "small", train_coerced),
    Probe("login_throttle", "small", login_throttle, prepare_accounts, accounts=True),
    Probe("viewer_text_plain", "11", viewer_text_plain, prepare_accounts, accounts=True),
]


# -- running a probe --------------------------------------------------------------------------


@dataclasses.dataclass
class Verdict:
    probe: str
    item: str
    verdict: str  # held, failed, error, skipped
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0
    worst_watch_s: float = 0.0
    watch_requests: int = 0
    statuses: dict = dataclasses.field(default_factory=dict)
    reasons: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def run_probe(
    probe: Probe, work: Path, inputs: Inputs, options: Options, accounts_host: str
) -> Verdict:
    started = time.monotonic()
    verdict = Verdict(probe.name, probe.item, "error")
    folder = work / probe.name
    server: Server | None = None
    watcher: Watcher | None = None
    sampler: RssSampler | None = None
    try:
        root = folder / "data"
        init_data_folder(root, demo=True, write_config=False)
        facts = probe.prepare(root, inputs) if probe.prepare else {}
        headers = {"Authorization": f"Bearer {facts['admin_token']}"} if probe.accounts else {}
        server = Server(root, folder, accounts_host if probe.accounts else "127.0.0.1", headers)
        server.start()
        for name in [DEMO_DATASET, *facts.get("datasets", [])]:
            server.wait_dataset(name)
        for name in facts.get("datasets_ok_or_refused", []):
            # the catalog may refuse it (state error, with the reason) rather than serve it
            server.wait_dataset(name, settled=("ok", "error"))
        assert server.proc is not None
        sampler = RssSampler(server.proc.pid, kill_mb=options.kill_mb, kill=server.kill)
        watcher = Watcher(server.address, headers)
        sampler.start()
        watcher.start()
        time.sleep(1.0)  # a baseline before the probe
        verdict.start_rss_mb = sampler.peak_mb
        outcome = probe.fire(Context(server, root, inputs, options, facts))
        if probe.runs_jobs:
            # The jobs' harm grows with the CPU they get, and on a shared machine that is
            # not the wall time: watch until the server has used job_cpu_s of CPU.
            cpu_before, watch_started = sampler.cpu_s, time.monotonic()
            while (
                sampler.cpu_s - cpu_before < options.job_cpu_s
                and time.monotonic() - watch_started < options.job_watch_max_s
                and server.alive()
                and server.active_jobs()
            ):
                time.sleep(1.0)
            outcome.notes.append(
                f"jobs watched {time.monotonic() - watch_started:.0f} s, server used "
                f"{sampler.cpu_s - cpu_before:.0f} CPU-s"
            )
        else:
            settle_until = time.monotonic() + options.settle_s
            while time.monotonic() < settle_until and server.alive():
                time.sleep(0.2)
        if server.alive():
            outcome.notes += job_summary(server)
    except Exception as exc:  # the probe could not run: say why, and go on with the next one
        verdict.reasons.append(f"{type(exc).__name__}: {str(exc)[:400]}")
        return verdict
    finally:
        if watcher is not None:
            watcher.stop()
        if sampler is not None:
            sampler.stop()
        if server is not None:
            server.stop()
        verdict.seconds = time.monotonic() - started
        shutil.rmtree(folder, ignore_errors=True)  # this probe's own temporary folder only
    assert watcher is not None and sampler is not None
    verdict.peak_rss_mb = sampler.peak_mb
    verdict.worst_watch_s = watcher.worst_s
    verdict.watch_requests = len(watcher.samples)
    verdict.statuses = dict(outcome.statuses)
    verdict.notes = outcome.notes
    reasons = []
    if sampler.killed_at_mb is not None:
        reasons.append(f"server killed by this script at {sampler.killed_at_mb:.0f} MB (--kill-mb)")
    elif sampler.peak_mb >= RSS_TARGET_MB:
        reasons.append(f"server RSS peaked at {sampler.peak_mb:.0f} MB")
    reasons += watcher.problems() + outcome.problems
    verdict.reasons = reasons
    verdict.verdict = "failed" if reasons else "held"
    return verdict


# -- report -----------------------------------------------------------------------------------


def machine() -> dict:
    model, flags = cpu_model_and_flags()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "commit": commit,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def print_verdict(v: Verdict) -> None:
    statuses = " ".join(f"{k}x{n}" for k, n in sorted(v.statuses.items())) or "-"
    print(
        f"{v.probe:<18} {v.item:>5} {v.verdict:<7} {v.peak_rss_mb:>7.0f} {v.start_rss_mb:>6.0f} "
        f"{v.worst_watch_s:>7.2f} {v.seconds:>5.0f}  {statuses}",
        flush=True,
    )
    for reason in v.reasons:
        print(f"{'':<20}- {reason}", flush=True)
    for note in v.notes:
        print(f"{'':<20}  ({note})", flush=True)


def check_loopback(host: str) -> str:
    if host and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"--accounts-host {host} is not a loopback address")
    return host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [p.name for p in PROBES]
    parser.add_argument(
        "--probes", default=",".join(names), help="comma-separated subset of: " + ", ".join(names)
    )
    parser.add_argument("--quick", action="store_true", help="shorter observation windows")
    parser.add_argument(
        "--parallel", type=int, default=10, help="copies of each probe fired at once"
    )
    parser.add_argument(
        "--import-parallel",
        type=int,
        default=3,
        help="model imports run at once by model_zip_bomb (each may reach --kill-mb)",
    )
    parser.add_argument(
        "--kill-mb",
        type=float,
        default=2000,
        help="kill the server (or an import) past this RSS, to protect the machine",
    )
    parser.add_argument(
        "--job-cpu-s",
        type=float,
        default=None,
        help="CPU seconds of the server to watch a probe's jobs for (60; --quick 30)",
    )
    parser.add_argument("--tile-deadline", type=float, default=None, help="seconds for live tiles")
    parser.add_argument(
        "--accounts-host",
        default="127.0.0.2",
        help="loopback address for the accounts probes (empty: skip them)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=720,
        help="start no probe after this many seconds (each probe is bounded on its own)",
    )
    parser.add_argument("--scratch", type=Path, default=None, help="folder for the temp folder")
    parser.add_argument("--json", type=Path, help="also write the verdicts to this file")
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.probes.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown probe(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    accounts_host = check_loopback(args.accounts_host)
    options = Options(
        parallel=args.parallel,
        quick=args.quick,
        kill_mb=args.kill_mb,
        import_parallel=args.import_parallel,
        tile_deadline_s=args.tile_deadline or (30.0 if args.quick else 60.0),
        settle_s=3.0 if args.quick else 5.0,
        job_cpu_s=args.job_cpu_s or (30.0 if args.quick else 60.0),
        job_watch_max_s=90.0 if args.quick else 180.0,
        snapshot_wait_s=120.0 if args.quick else 150.0,
    )
    facts = machine()
    print("BioSegment red-team replay (127.0.0.1; the machine may be shared with other work)")
    print(
        f"CPU {facts['cpu']} ({', '.join(facts['cpu_flags']) or 'no avx2'}), {facts['cores']} cores, "
        f"Python {facts['python']}, commit {facts['commit']}, load {facts['load_average']}"
    )
    print(
        f"held = every watcher GET {WATCH_PATH} answered within {LATENCY_TARGET_S:.0f} s, server "
        f"RSS under {RSS_TARGET_MB} MB, the probe's answers refused or bounded; "
        f"{options.parallel} at once"
    )
    print(
        "peakMB: the server's peak RSS; baseMB: before the probe fired; worst_s: the slowest "
        "watcher GET; secs: the probe's wall time with the server's start and stop"
    )
    print(
        f"{'probe':<18} {'item':>5} {'verdict':<7} {'peakMB':>7} {'baseMB':>6} {'worst_s':>7} {'secs':>5}  statuses"
    )
    verdicts: list[Verdict] = []
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="biosegment-redteam-", dir=args.scratch))
    try:
        inputs = Inputs(work / "inputs")
        for probe in (p for p in PROBES if p.name in chosen):
            if probe.accounts and not accounts_host:
                verdict = Verdict(probe.name, probe.item, "skipped", reasons=["no --accounts-host"])
            elif time.monotonic() - began > args.budget_s:
                verdict = Verdict(probe.name, probe.item, "skipped", reasons=["past --budget-s"])
            else:
                verdict = run_probe(probe, work, inputs, options, accounts_host)
            verdicts.append(verdict)
            print_verdict(verdict)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = collections.Counter(v.verdict for v in verdicts)
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{counts['held']} held, {counts['failed']} failed, {counts['error']} error, "
        f"{counts['skipped']} skipped in {time.monotonic() - began:.0f} s; this script's own "
        f"peak RSS {own_peak:.0f} MB; load {[round(v, 2) for v in os.getloadavg()]}"
    )
    if args.json:
        document = {"machine": facts, "verdicts": [dataclasses.asdict(v) for v in verdicts]}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
