"""What ``biosegment init`` tells a person to do next, true for the folder they are in.

``init`` writes a ``biosegment.toml`` into the new data folder, but a later command reads the
config it finds from *its* working folder (``--config``, ``BIOSEGMENT_CONFIG``,
``./biosegment.toml``, then the user's config folder), so that file is not read by a plain
``biosegment run`` typed next to the folder. The advice says where the file is, when it is
read, and the exact command that serves the new folder from here.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from biosegment.config import find_config_file, load_config
from biosegment.errors import BioSegmentError

__all__ = ["next_command", "config_file_note", "shown_path"]


def shown_path(path: Path, cwd: Path) -> str:
    """``path`` as a person types it here: relative when it lies under ``cwd``, quoted for
    the shell when it needs to be."""
    path = path.resolve()
    try:
        text = str(path.relative_to(cwd.resolve())) or "."
    except ValueError:
        text = str(path)
    if sys.platform == "win32":
        return subprocess.list2cmdline([text])
    return shlex.quote(text)


def _finds(root: Path, config_path: Path | None, env: Mapping[str, str], cwd: Path) -> bool:
    """Whether a command typed in ``cwd`` with this ``--config`` (or none) and no ``--data``
    would use ``root`` as its data folder."""
    try:
        config = load_config(config_path, env=env, cwd=cwd)
    except BioSegmentError:
        return False  # a broken config here: naming the folder with --data still works
    return config.data_dir.resolve() == root.resolve()


def next_command(
    root: Path,
    command: str = "run",
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """The shortest command line that runs ``command`` on ``root`` from ``cwd``, keeping the
    ``--config`` the person gave ``init``."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    words = ["biosegment"]
    if config_path is not None:
        words += ["--config", shown_path(config_path, cwd)]
    if not _finds(root, config_path, env, cwd):
        words += ["--data", shown_path(root, cwd)]
    return " ".join([*words, command])


def config_file_note(
    config_file: Path, root: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Where the folder's config file is and which commands read it."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    shown = shown_path(config_file, cwd)
    read_by = f"read with `biosegment --config {shown} ...` or by commands run inside " + (
        shown_path(root, cwd)
    )
    try:
        read_here = find_config_file(None, env=env, cwd=cwd)
    except BioSegmentError as exc:
        return f"Config file: {shown}, {read_by} (commands run here stop at: {exc})"
    if read_here is not None and read_here == config_file.resolve():
        return f"Config file: {shown} (read by every biosegment command run here)"
    here = "the built-in defaults" if read_here is None else shown_path(read_here, cwd)
    return f"Config file: {shown}, {read_by}; commands run here read {here}"
