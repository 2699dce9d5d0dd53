"""The three service managers BioSegment installs into, as one table of small descriptions.

For each platform (``linux``: systemd, ``macos``: launchd, ``windows``: Task Scheduler) a
:class:`ServicePlatform` says how the definition is rendered, where the file goes for a system
or a per-user service, and which commands register, remove and query it. Nothing here runs a
command or writes a file; :mod:`biosegment.system_service.manager` does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from biosegment.config import user_config_dir
from biosegment.errors import InputError
from biosegment.folder_names import STATE_DIR
from biosegment.system_service.rendering import (
    launchd_label,
    render_launchd,
    render_systemd,
    render_windows_task,
    windows_task_name,
)
from biosegment.system_service.spec import ServiceSpec, current_user

__all__ = ["ServicePlatform", "PLATFORMS", "platform_for", "current_platform_key"]

Commands = list[list[str]]


@dataclass(frozen=True, slots=True)
class ServicePlatform:
    key: str
    manager: str  #: the service manager, in words
    render: Callable[[ServiceSpec], str]
    file_name: Callable[[ServiceSpec], str]
    default_dir: Callable[[ServiceSpec], Path]
    encoding: str
    install_commands: Callable[[ServiceSpec, Path], Commands]
    uninstall_commands: Callable[[ServiceSpec, Path], Commands]
    status_command: Callable[[ServiceSpec], list[str]]


# -- systemd -----------------------------------------------------------------------------------


def _systemctl(spec: ServiceSpec, *args: str) -> list[str]:
    return ["systemctl", *(["--user"] if spec.user_scope else []), *args]


def _systemd_dir(spec: ServiceSpec) -> Path:
    if spec.user_scope:
        # user_config_dir() is $XDG_CONFIG_HOME/biosegment: systemd's user units sit beside it.
        return user_config_dir().parent / "systemd" / "user"
    return Path("/etc/systemd/system")


def _systemd_unit(spec: ServiceSpec) -> str:
    return f"{spec.name}.service"


_SYSTEMD = ServicePlatform(
    key="linux",
    manager="systemd",
    render=render_systemd,
    file_name=_systemd_unit,
    default_dir=_systemd_dir,
    encoding="utf-8",
    install_commands=lambda spec, path: [
        _systemctl(spec, "daemon-reload"),
        _systemctl(spec, "enable", "--now", _systemd_unit(spec)),
    ],
    uninstall_commands=lambda spec, path: [
        _systemctl(spec, "disable", "--now", _systemd_unit(spec))
    ],
    status_command=lambda spec: _systemctl(
        spec, "status", "--no-pager", "--lines=5", _systemd_unit(spec)
    ),
)


# -- launchd -----------------------------------------------------------------------------------


def _launchd_domain(spec: ServiceSpec) -> str:
    # getuid is POSIX-only; rendering a macOS definition on Windows still works.
    uid = os.getuid() if hasattr(os, "getuid") else 501
    return f"gui/{uid}" if spec.user_scope else "system"


def _launchd_dir(spec: ServiceSpec) -> Path:
    if spec.user_scope:
        return Path.home() / "Library" / "LaunchAgents"
    return Path("/Library/LaunchDaemons")


_LAUNCHD = ServicePlatform(
    key="macos",
    manager="launchd",
    render=render_launchd,
    file_name=lambda spec: f"{launchd_label(spec)}.plist",
    default_dir=_launchd_dir,
    encoding="utf-8",
    install_commands=lambda spec, path: [
        ["launchctl", "bootstrap", _launchd_domain(spec), str(path)]
    ],
    uninstall_commands=lambda spec, path: [
        ["launchctl", "bootout", f"{_launchd_domain(spec)}/{launchd_label(spec)}"]
    ],
    status_command=lambda spec: [
        "launchctl",
        "print",
        f"{_launchd_domain(spec)}/{launchd_label(spec)}",
    ],
)


# -- Windows Task Scheduler --------------------------------------------------------------------


def _task_user(spec: ServiceSpec) -> str:
    return current_user() if spec.user_scope else spec.account


def _windows_install(spec: ServiceSpec, path: Path) -> Commands:
    create = ["schtasks", "/Create", "/TN", windows_task_name(spec), "/XML", str(path), "/F"]
    if not spec.user_scope:
        # /RP without a value: schtasks asks for the account's password on the console.
        create += ["/RU", spec.account, "/RP"]
    return [create, ["schtasks", "/Run", "/TN", windows_task_name(spec)]]


_WINDOWS = ServicePlatform(
    key="windows",
    manager="Task Scheduler",
    render=lambda spec: render_windows_task(spec, user=_task_user(spec)),
    file_name=lambda spec: f"{spec.name}-task.xml",
    # Task Scheduler keeps its own copy; ours stays with the data folder's state.
    default_dir=lambda spec: spec.working_dir / STATE_DIR / "service",
    encoding="utf-16",
    install_commands=_windows_install,
    uninstall_commands=lambda spec, path: [
        ["schtasks", "/End", "/TN", windows_task_name(spec)],
        ["schtasks", "/Delete", "/TN", windows_task_name(spec), "/F"],
    ],
    status_command=lambda spec: [
        "schtasks",
        "/Query",
        "/TN",
        windows_task_name(spec),
        "/FO",
        "LIST",
        "/V",
    ],
)

PLATFORMS: dict[str, ServicePlatform] = {p.key: p for p in (_SYSTEMD, _LAUNCHD, _WINDOWS)}


def current_platform_key() -> str:
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def platform_for(key: str | None) -> ServicePlatform:
    key = key or current_platform_key()
    if key not in PLATFORMS:
        raise InputError(
            f"unknown platform {key!r}; expected one of {', '.join(PLATFORMS)}", where="--platform"
        )
    return PLATFORMS[key]
