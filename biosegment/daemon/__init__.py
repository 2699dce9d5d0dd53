"""The daemon: watch a data folder, keep its catalog current, run its jobs, serve the web UI.

:class:`Daemon` is what ``biosegment run`` starts; :class:`ConsumerHost` is the queue consumer
that ``biosegment worker`` runs alone; :func:`daemon_running` tells the CLI whether a daemon
serves a data folder (then ``--wait`` watches the queued job instead of running it itself).
"""

from __future__ import annotations

from biosegment.folder_lock import (
    DaemonAlreadyRunning,
    daemon_info,
    daemon_running,
    live_runners,
)

__all__ = [
    "Daemon",
    "ConsumerHost",
    "DataFolderWatcher",
    "DaemonAlreadyRunning",
    "daemon_running",
    "daemon_info",
    "live_runners",
]


def __getattr__(name: str):
    # The heavy parts (watchdog, Huey, APScheduler, the catalog) load only when used, so the
    # CLI's daemon_running() check stays cheap.
    if name == "Daemon":
        from biosegment.daemon.service import Daemon

        return Daemon
    if name == "ConsumerHost":
        from biosegment.daemon.consumer import ConsumerHost

        return ConsumerHost
    if name == "DataFolderWatcher":
        from biosegment.daemon.watcher import DataFolderWatcher

        return DataFolderWatcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
