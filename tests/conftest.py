"""Fixtures shared by the whole suite: where the shared data lives, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ISBI = SHARED / "data" / "isbi2012"
FIXTURES = SHARED / "fixtures" / "neuralnets"

# Two cores in CI: keep each test process from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def one_torch_thread():
    """Tiny networks gain nothing from a second thread, and on a busy machine its waiting
    costs more than the work; restore the process setting afterwards."""
    import torch  # only the engine's tests ask for it; the others never load torch here

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def isbi_dir() -> Path:
    if not (ISBI / "train-volume.tif").is_file():
        pytest.skip(f"ISBI 2012 data not found at {ISBI}")
    return ISBI


@pytest.fixture(scope="session")
def neuralnets_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"neuralnets fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture
def clean_env(monkeypatch):
    """Remove variables that would redirect the config or data folder of the process."""
    for name in ("BIOSEGMENT_CONFIG", "BIOSEGMENT_DATA", "ROOT_DATA_FOLDER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch
