"""Doctor's checks of the data folder itself: is a daemon using it, is its layout complete.

A daemon or worker that holds the folder keeps the databases open, so a repair under it would
race its writes: :func:`folder_users` finds them, and the doctor then only reports. A running
daemon is how a folder is meant to be used, so :func:`check_daemon` calls it fine and says that
repairs wait. A missing layout folder (``EM/``, ``models/``, ...) is recreated, empty; nothing
is ever removed.
"""

from __future__ import annotations

from pathlib import Path

from biosegment.doctor.report import Finding
from biosegment.folder_lock import daemon_info, live_runners
from biosegment.folder_names import LAYOUT

__all__ = ["folder_users", "check_daemon", "check_layout"]


def folder_users(root: Path) -> list[str]:
    """Who uses the data folder now (its lock and presence files), in words; empty: nobody."""
    info = daemon_info(root)
    runners = live_runners(root)
    who = []
    if info is not None:
        who.append(f"a daemon (pid {info.get('pid')} on {info.get('host')})")
    if runners:
        who.append(f"{len(runners)} job runner(s)")
    return who


def check_daemon(users: list[str]) -> Finding:
    """A daemon or runners at work are fine; while they are, the doctor repairs nothing."""
    if not users:
        return Finding("daemon", "ok", "no daemon or worker is using the data folder")
    return Finding(
        "daemon",
        "ok",
        f"{' and '.join(users)} serve(s) the data folder: checking only; stop them to let "
        "doctor repair what it finds",
    )


def check_layout(root: Path, *, repair: bool) -> Finding:
    missing = [name for name in LAYOUT if not (root / name).is_dir()]
    if not missing:
        return Finding("layout", "ok", f"{', '.join(LAYOUT)} are present")
    if not repair:
        return Finding("layout", "problem", f"missing folder(s): {', '.join(missing)}")
    for name in missing:
        (root / name).mkdir(exist_ok=True)
    return Finding(
        "layout",
        "repaired",
        f"recreated the empty folder(s): {', '.join(missing)}",
        recovered={"folders": missing},
    )
