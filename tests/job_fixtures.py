"""Shared set-up for the daemon and job tests: small data folders, tiny models, real processes.

Everything here is real: data folders on disk made by ``init_data_folder``, U-Nets saved with
the engine, ``biosegment`` subprocesses started with this interpreter, Redis from its Debian
binary. Networks are tiny (4 feature maps, 2 levels) and volumes small so the suite stays fast
on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from biosegment.catalog import open_catalog, refresh
from biosegment.config import config_from_mapping
from biosegment.datafolder import init_data_folder

REPO = Path(__file__).resolve().parents[1]
DEMO_DATASET = "isbi2012-demo"
TINY_MODEL = "tiny"
TRAIN_DATASET = "cells"
#: Options that keep a training job to a fraction of a second per step on two cores.
QUICK_TRAIN = {
    "feature_maps": 4,
    "levels": 2,
    "crop_size": 32,
    "batch_size": 2,
    "validation_fraction": 0.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def save_tiny_model(root: Path, name: str = TINY_MODEL, seed: int = 0) -> Path:
    import torch

    from biosegment.engine import ModelCard, UNet, save_model

    torch.manual_seed(seed)
    model = UNet(feature_maps=4, levels=2, num_classes=2)
    return save_model(model, ModelCard(name=name), root / "models" / name)


def add_training_dataset(root: Path, name: str = TRAIN_DATASET, depth: int = 4) -> None:
    """A small stack of bright discs on noise, with its ground truth (0/1 class ids)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64]
    images, labels = [], []
    for _ in range(depth):
        mask = np.zeros((64, 64), dtype=bool)
        for _ in range(4):
            cy, cx, r = rng.integers(10, 54), rng.integers(10, 54), rng.integers(4, 9)
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        images.append(
            np.clip(60 + 120 * mask + rng.normal(0, 20, (64, 64)), 0, 255).astype(np.uint8)
        )
        labels.append(mask.astype(np.uint8))
    raw = root / "EM" / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(raw / f"{name}.tif", np.stack(images), photometric="minisblack")
    truth = root / "EM" / name / "labels"
    truth.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(truth / "labels.tif", np.stack(labels), photometric="minisblack")


def make_folder(
    tmp_path: Path,
    *,
    demo: bool = True,
    training: bool = False,
    queue_url: str = "",
    workers: int = 1,
    port: int | None = None,
    extra: dict | None = None,
):
    """A data folder with the demo dataset, a tiny model and a biosegment.toml; returns
    ``(root, config)``. The catalog is refreshed so jobs can be submitted right away."""
    root = init_data_folder(tmp_path / "data", demo=demo, write_config=False).root
    save_tiny_model(root)
    if training:
        add_training_dataset(root)
    port = port or free_port()
    lines = [
        f'data_dir = "{root}"',
        "",
        "[server]",
        f"port = {port}",
        "",
        "[queue]",
        f'url = "{queue_url}"',
        f"workers = {workers}",
        "",
    ]
    for section, values in (extra or {}).items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    (root / "biosegment.toml").write_text("\n".join(lines), encoding="utf-8")
    from biosegment.config import load_config

    config = load_config(root / "biosegment.toml", env={})
    catalog = open_catalog(root)
    try:
        refresh(catalog, root)
    finally:
        catalog.close()
    return root, config


def plain_config(root: Path, **sections):
    return config_from_mapping({"data_dir": str(root), **sections})


#: Removed from the environment of ``biosegment`` subprocesses: no config redirection, and no
#: display, so ``run`` never opens a window during tests.
_HIDDEN_ENVIRONMENT = (
    "BIOSEGMENT_CONFIG",
    "BIOSEGMENT_DATA",
    "ROOT_DATA_FOLDER",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "QT_QPA_PLATFORM",
)


def biosegment_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _HIDDEN_ENVIRONMENT}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_biosegment(root: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    """``python -m biosegment --config <root>/biosegment.toml ARGS`` as a real subprocess."""
    output = open(log, "ab") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "biosegment", "--config", str(root / "biosegment.toml"), *args],
        cwd=str(REPO),
        env=biosegment_env(),
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_biosegment(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biosegment", "--config", str(root / "biosegment.toml"), *args],
        cwd=str(REPO),
        env=biosegment_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop_process(process: subprocess.Popen, *, sig=signal.SIGTERM, timeout: float = 60) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)
    return process.returncode


def job_row(root: Path, job_id: str) -> dict:
    catalog = open_catalog(root)
    try:
        return catalog.job(job_id)
    finally:
        catalog.close()
