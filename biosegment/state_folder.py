"""Create the data folder's own state folder, ``.biosegment/``, private to the people who run it.

It holds the catalog, the job queue, job logs and the daemon's log: listings of everyone's
datasets and jobs that other accounts on the machine have no business reading. On POSIX the
folder is made 0700, or 0770 when the data folder itself is group-writable (a lab sharing one
data folder through a Unix group keeps sharing its state); on every open, a folder we own that
others can still read is tightened the same way, so an installation made before this rule
gets it too. Windows keeps its inherited ACLs. The files inside keep the process's umask: the
folder is what keeps others out.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from biosegment.folder_names import STATE_DIR

__all__ = ["private_state_dir", "state_dir_mode"]


def state_dir_mode(root: Path) -> int:
    """0o770 when ``root`` is group-writable (shared through a group), else 0o700."""
    try:
        shared = bool(os.stat(root).st_mode & stat.S_IWGRP)
    except OSError:
        shared = False
    return 0o770 if shared else 0o700


def private_state_dir(root: Path) -> Path:
    """``<root>/.biosegment``, created (or tightened) to :func:`state_dir_mode` on POSIX."""
    folder = Path(root) / STATE_DIR
    if os.name != "posix":
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    mode = state_dir_mode(Path(root))
    folder.mkdir(mode=mode, parents=True, exist_ok=True)
    try:
        info = os.stat(folder)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & ~mode:
            os.chmod(folder, mode)
    except OSError:
        pass  # a folder we cannot inspect or change stays as it is; doctor reports access
    return folder
