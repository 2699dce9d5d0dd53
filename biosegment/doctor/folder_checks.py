"""Doctor's checks of the data folder itself: is a daemon using it, is its layout complete.

A daemon or worker that holds the folder keeps the databases open, so a repair under it would
race its writes: :func:`check_daemon` finds it, and the doctor then only reports. A missing
layout folder (``EM/``, ``models/``, ...) is recreated, empty; nothing is ever removed.
"""

from __future__ import annotations

from pathlib import Path

from biosegment.doctor.report import Finding
from biosegment.folder_lock import daemon_info, live_runners
from biosegment.folder_names import LAYOUT

__all__ = ["check_daemon", "check_layout"]


def check_daemon(root: Path) -> Finding:
    info = daemon_info(root)
    runners = live_runners(root)
    if info is None and not runners:
        return Finding("daemon", "ok", "no daemon or worker is using the data folder")
    who = []
    if info is not None:
        who.append(f"a daemon (pid {info.get('pid')} on {info.get('host')})")
    if runners:
        who.append(f"{len(runners)} job runner(s)")
    return Finding(
        "daemon",
        "problem",
        f"{' and '.join(who)} use the data folder; stop them before repairing (only checking now)",
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
