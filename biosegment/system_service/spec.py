"""What a system service for one data folder runs: its name, account, folder, command and log.

:func:`build_service_spec` turns a :class:`~biosegment.config.Config` into a
:class:`ServiceSpec`, the platform-neutral description that every template (systemd, launchd,
Windows Task Scheduler) is filled from. The command is ``<python> -m biosegment [--config FILE]
--data DIR run --headless`` with absolute paths, so the service runs the same installation and
the same data folder as the command that installed it, whatever the service manager's working
directory and environment.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from biosegment.config import Config
from biosegment.errors import InputError

__all__ = [
    "ServiceSpec",
    "build_service_spec",
    "DEFAULT_SERVICE_NAME",
    "current_user",
    "folder_owner",
]

DEFAULT_SERVICE_NAME = "biosegment"
_NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ACCOUNT_RULE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@\\ -]{0,127}$")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """Everything a service definition says, independent of the service manager."""

    name: str  #: unit, label or task name: ``biosegment``, ``biosegment-lab``
    user_scope: bool  #: True: the user's own service manager; False: system-wide
    account: str | None  #: the account a system service runs as (None for user scope)
    group: str | None  #: that account's primary group, where the system knows it
    working_dir: Path  #: the data folder
    command: tuple[str, ...]  #: argv, the program first (an absolute path)
    log_file: Path  #: where launchd writes standard output and error
    description: str  #: one line for humans, naming the data folder


def current_user() -> str:
    """The account running this process (no environment lookups: the system's own record)."""
    if sys.platform == "win32":  # pragma: no cover - Windows
        return os.getlogin()
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def folder_owner(path: Path) -> str | None:
    """The account owning ``path`` on POSIX, None where that cannot be told."""
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return None


def _primary_group(account: str) -> str | None:
    try:
        import grp
        import pwd

        return grp.getgrgid(pwd.getpwnam(account).pw_gid).gr_name
    except (ImportError, KeyError):
        return None


def _checked_name(name: str) -> str:
    if not _NAME_RULE.match(name):
        raise InputError(
            "a service name is 1-64 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit",
            where="--name",
        )
    return name


def _checked_account(account: str) -> str:
    if not _ACCOUNT_RULE.match(account):
        raise InputError(f"{account!r} is not an account name", where="--run-as")
    return account


def _checked_path(path: Path, *, where: str) -> Path:
    # A line break would end the directive that carries the path in every format we write.
    if any(ch in str(path) for ch in "\n\r\x00"):
        raise InputError(
            "a path with a line break or NUL cannot go into a service definition",
            source=path,
            where=where,
        )
    return path


def build_service_spec(
    config: Config,
    *,
    user_scope: bool,
    name: str = DEFAULT_SERVICE_NAME,
    account: str | None = None,
    python: str | os.PathLike | None = None,
    target_platform: str | None = None,
) -> ServiceSpec:
    """Describe the service that runs ``biosegment run --headless`` for ``config.data_dir``.

    A system service runs as ``account``: by default the owner of the data folder on POSIX,
    the installing user on Windows (whose password Task Scheduler then asks for).
    """
    data_dir = _checked_path(Path(config.data_dir).resolve(), where="data_dir")
    if not data_dir.is_dir():
        raise InputError(
            "the data folder does not exist; create it with biosegment init", source=data_dir
        )
    program = _checked_path(Path(python or sys.executable).absolute(), where="python")
    command = [str(program), "-m", "biosegment"]
    if config.source is not None:
        command += ["--config", str(_checked_path(Path(config.source).resolve(), where="--config"))]
    command += ["--data", str(data_dir), "run", "--headless"]
    if user_scope:
        account, group = None, None
    else:
        if account is None and (target_platform or sys.platform) != "win32":
            account = folder_owner(data_dir)
        account = _checked_account(account or current_user())
        group = _primary_group(account)
    return ServiceSpec(
        name=_checked_name(name),
        user_scope=user_scope,
        account=account,
        group=group,
        working_dir=data_dir,
        command=tuple(command),
        log_file=_checked_path(config.state_dir / "service.log", where="log"),
        description=f"the data folder {data_dir}",
    )
