"""A job's log file: what the job did, and what the engine logged while it ran.

Each job writes ``.biosegment/jobs/<id>/job.log``. Lines are time-stamped and appended, so a job
that resumes after a restart continues the same file. While a job runs, records that BioSegment's
own loggers emit from the job's thread are copied into the file as well; other jobs running in
other threads of the same process never leak into it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["JobLog"]

_PACKAGE_LOGGER = "biosegment"


class _ThreadHandler(logging.Handler):
    def __init__(self, log: JobLog, thread_id: int):
        super().__init__(logging.INFO)
        self._log = log
        self._thread_id = thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread_id:
            return
        try:
            self._log.write(record.getMessage(), level=record.levelname)
        except Exception:  # logging must never break the job
            self.handleError(record)


class JobLog:
    """Append-only, line-buffered log of one job; use as a context manager while the job runs."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._handler: _ThreadHandler | None = None

    def write(self, message: str, *, level: str = "INFO") -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        lines = str(message).rstrip("\n").splitlines() or [""]
        text = "".join(f"{stamp} {level:<7} {line}\n" for line in lines)
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)

    def __enter__(self) -> JobLog:
        self._handler = _ThreadHandler(self, threading.get_ident())
        logging.getLogger(_PACKAGE_LOGGER).addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None:
            logging.getLogger(_PACKAGE_LOGGER).removeHandler(self._handler)
            self._handler = None
