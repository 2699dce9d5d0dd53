"""What every request of one application shares: the config, the catalog, the jobs and caches.

Like flaskr's ``get_db``, the catalog is opened on first use and kept for the application's life
(its connection is safe to share between waitress threads). The job service is either the one
the daemon hands in or, when the app runs on its own, one built from the config on first use;
when the job queue cannot be built, job requests answer 503 and the rest of the UI keeps working.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flask import current_app

from biosegment.catalog import open_catalog
from biosegment.config import Config
from biosegment.tasks.service import JobService
from biosegment.webui.errors import ApiError
from biosegment.webui.layers import LayerStore
from biosegment.webui.live_preview import LivePreviews
from biosegment.webui.object_store import ObjectStore
from biosegment.webui.read_gate import ReadGate

__all__ = ["WebState", "web_state", "EXTENSION_KEY"]

EXTENSION_KEY = "biosegment"


class WebState:
    """Shared per-application state; reach it with :func:`web_state` inside a request."""

    def __init__(self, config: Config, *, jobs: Any = None):
        self.config = config
        self.root: Path = Path(config.data_dir)
        self.layers = LayerStore(self.root)
        # segmentations' object tables and instance volumes (the viewer's object list)
        self.objects = ObjectStore(self.root, max_rows=config.limits.object_rows)
        self.reads = ReadGate(
            read_seconds=config.limits.read_seconds, heavy_reads=config.limits.heavy_reads
        )
        # Predictions of running fine-tunes' snapshots (the viewer's live layer).
        self.live = LivePreviews(
            device=config.engine.device, wait_seconds=config.limits.read_seconds
        )
        self._jobs = jobs
        self._owns_jobs = False
        self._catalog = None
        self._lock = threading.Lock()

    def catalog(self):
        if self._catalog is None:
            with self._lock:
                if self._catalog is None:
                    self._catalog = open_catalog(self.root)
        return self._catalog

    def jobs(self):
        """The job service; a class passed in is built with the config on first use."""
        if self._jobs is None or isinstance(self._jobs, type):
            with self._lock:
                if self._jobs is None or isinstance(self._jobs, type):
                    self._jobs = self._build_jobs(self._jobs)
        return self._jobs

    def _build_jobs(self, factory):
        try:
            if factory is None:
                factory = JobService
            service = factory(self.config)
            self._owns_jobs = True
            return service
        except ImportError as exc:
            raise ApiError(
                503, f"the job queue is not available in this installation ({exc})", field=None
            ) from exc

    def close(self) -> None:
        self.layers.close()
        self.objects.close()
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        # A service the daemon handed in is the daemon's to close.
        close = getattr(self._jobs, "close", None)
        if self._owns_jobs and callable(close):
            close()


def web_state() -> WebState:
    return current_app.extensions[EXTENSION_KEY]
