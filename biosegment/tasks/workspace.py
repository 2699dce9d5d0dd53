"""Where one job keeps its working files: ``.biosegment/jobs/<id>/``.

A job's log, its training checkpoint and the finished z-blocks of a segmentation live in its own
folder inside the data folder's state directory, so any process that mounts the data folder (a
worker on another machine, the daemon after a restart) can read the log and resume the work.
Nothing here is an output: results are renamed into ``segmentations/`` or ``models/`` when whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biosegment.config import Config
from biosegment.folder_names import (
    JOB_ASSEMBLY_CLAIM,
    JOB_CONTROL,
    JOB_LIVE_DIR,
    JOB_LOG,
    JOB_PARTS_DIR,
    JOB_STEPS,
    JOB_TRAINING_DIR,
    JOBS_DIR,
)
from biosegment.paths import relative_to_root

__all__ = ["JobWorkspace"]


@dataclass(frozen=True, slots=True)
class JobWorkspace:
    """The working folder of one job, and the names of the files in it."""

    root: Path  #: the data folder
    state_dir: Path  #: ``<root>/.biosegment``
    job_id: str

    @classmethod
    def of(cls, config: Config, job_id: str) -> JobWorkspace:
        return cls(root=Path(config.data_dir), state_dir=Path(config.state_dir), job_id=job_id)

    @property
    def folder(self) -> Path:
        return self.state_dir / JOBS_DIR / self.job_id

    @property
    def log_file(self) -> Path:
        return self.folder / JOB_LOG

    @property
    def log_location(self) -> str:
        """The log's location relative to the data folder (what the job row stores)."""
        return relative_to_root(self.root, self.log_file)

    @property
    def parts_dir(self) -> Path:
        """Finished z-blocks of a segmentation, one file per block."""
        return self.folder / JOB_PARTS_DIR

    @property
    def assembly_claim(self) -> Path:
        """Created exclusively by the one runner that assembles a split segmentation."""
        return self.folder / JOB_ASSEMBLY_CLAIM

    @property
    def training_dir(self) -> Path:
        """A train job's training folder; renamed into ``models/<name>/`` when the run ends."""
        return self.folder / JOB_TRAINING_DIR

    @property
    def live_dir(self) -> Path:
        """A running train job's latest weights and their status, for the live preview."""
        return self.folder / JOB_LIVE_DIR

    @property
    def control_file(self) -> Path:
        """A person's request of a running train job (accept or discard)."""
        return self.folder / JOB_CONTROL

    @property
    def steps_file(self) -> Path:
        """A train job's loss per optimizer step; kept after it ends, for the jobs page."""
        return self.folder / JOB_STEPS

    def create(self) -> JobWorkspace:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self
