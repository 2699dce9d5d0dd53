"""Install, remove and inspect the service that runs a data folder's daemon.

:func:`plan_service` renders the definition for the chosen platform and scope and says where it
goes and which service-manager commands register it; :func:`install_service`,
:func:`uninstall_service` and :func:`service_status` carry that plan out. A definition already
in place with other content is kept unless ``force`` is given, and even then it is renamed to
``<file>.previous`` rather than overwritten. A service manager that is missing or fails is
reported with the command to run by hand; the written definition stays in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biosegment.config import Config
from biosegment.errors import BioSegmentError, InputError
from biosegment.system_service.platforms import ServicePlatform, platform_for
from biosegment.system_service.spec import DEFAULT_SERVICE_NAME, ServiceSpec, build_service_spec

__all__ = [
    "ServicePlan",
    "CommandOutcome",
    "ServiceReport",
    "plan_service",
    "install_service",
    "uninstall_service",
    "service_status",
]

_COMMAND_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class ServicePlan:
    spec: ServiceSpec
    platform: ServicePlatform
    path: Path  #: where the definition file goes
    content: str  #: the rendered definition

    @property
    def install_commands(self) -> list[list[str]]:
        return self.platform.install_commands(self.spec, self.path)

    @property
    def uninstall_commands(self) -> list[list[str]]:
        return self.platform.uninstall_commands(self.spec, self.path)


@dataclass(slots=True)
class CommandOutcome:
    command: list[str]
    returncode: int | None  #: None when the program could not be started
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "returncode": self.returncode, "output": self.output}


@dataclass(slots=True)
class ServiceReport:
    name: str
    platform: str
    scope: str
    definition: Path
    action: str  #: written, unchanged, removed, absent, ...
    previous: Path | None = None  #: where a replaced definition was kept
    commands: list[CommandOutcome] = field(default_factory=list)
    installed: bool = False
    current: bool = False  #: the file says what an install would write now

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.commands)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "platform": self.platform,
            "scope": self.scope,
            "definition": str(self.definition),
            "action": self.action,
            "previous": None if self.previous is None else str(self.previous),
            "installed": self.installed,
            "current": self.current,
            "ok": self.ok,
            "commands": [c.as_dict() for c in self.commands],
        }


def plan_service(
    config: Config,
    *,
    user_scope: bool,
    name: str = DEFAULT_SERVICE_NAME,
    account: str | None = None,
    platform: str | None = None,
    target_dir: Path | None = None,
    python: str | os.PathLike | None = None,
) -> ServicePlan:
    """Render the definition for ``config``; ``target_dir`` replaces the manager's folder and
    ``python`` the interpreter the service runs (default: this one)."""
    chosen = platform_for(platform)
    target_platform = {"windows": "win32", "macos": "darwin"}.get(chosen.key, "linux")
    spec = build_service_spec(
        config,
        user_scope=user_scope,
        name=name,
        account=account,
        python=python,
        target_platform=target_platform,
    )
    folder = Path(target_dir) if target_dir is not None else chosen.default_dir(spec)
    return ServicePlan(
        spec=spec,
        platform=chosen,
        path=folder / chosen.file_name(spec),
        content=chosen.render(spec),
    )


def _report(plan: ServicePlan, action: str) -> ServiceReport:
    return ServiceReport(
        name=plan.spec.name,
        platform=plan.platform.key,
        scope="user" if plan.spec.user_scope else "system",
        definition=plan.path,
        action=action,
    )


def _read_definition(plan: ServicePlan) -> str | None:
    try:
        return plan.path.read_text(encoding=plan.platform.encoding)
    except FileNotFoundError:
        return None
    except (UnicodeError, OSError) as exc:
        raise InputError(f"cannot read the installed definition: {exc}", source=plan.path) from None


def _run(command: list[str]) -> CommandOutcome:
    if shutil.which(command[0]) is None:
        return CommandOutcome(command, None, f"{command[0]} not found on this system")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandOutcome(command, None, str(exc))
    return CommandOutcome(command, proc.returncode, (proc.stdout + proc.stderr).strip())


def _write_atomically(path: Path, content: str, encoding: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding=encoding, newline="\n") as handle:
            handle.write(content)
        # Readable by the service manager, writable only by whoever installed it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BioSegmentError(
            f"{path}: cannot write the service definition ({exc}); a "
            "system service needs administrator rights, or use --user"
        ) from exc


def _keep_previous(path: Path) -> Path:
    target = path.with_name(path.name + ".previous")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.previous{counter}")
    os.replace(path, target)
    return target


def install_service(plan: ServicePlan, *, start: bool = True, force: bool = False) -> ServiceReport:
    """Write the definition (keeping a different existing one unless ``force``) and register it."""
    existing = _read_definition(plan)
    report = _report(plan, "written")
    if existing == plan.content:
        report.action = "unchanged"
    else:
        if existing is not None:
            if not force:
                raise InputError(
                    "a different service definition is already installed here; "
                    "use --force to replace it (the old one is kept as "
                    f"{plan.path.name}.previous)",
                    source=plan.path,
                )
            report.previous = _keep_previous(plan.path)
        _write_atomically(plan.path, plan.content, plan.platform.encoding)
    report.installed = report.current = True
    if start:
        for command in plan.install_commands:
            outcome = _run(command)
            report.commands.append(outcome)
            if not outcome.ok:
                break
    return report


def uninstall_service(plan: ServicePlan, *, stop: bool = True) -> ServiceReport:
    """Stop and unregister the service, then remove its definition file."""
    report = _report(plan, "absent")
    if stop:
        report.commands = [_run(command) for command in plan.uninstall_commands]
    if plan.path.exists():
        plan.path.unlink()
        report.action = "removed"
        if stop and plan.platform.key == "linux":
            report.commands.append(_run(plan.install_commands[0]))  # daemon-reload
    return report


def service_status(plan: ServicePlan, *, query: bool = True) -> ServiceReport:
    """Whether the definition is installed and current, and what the service manager says."""
    existing = _read_definition(plan)
    report = _report(plan, "installed" if existing is not None else "absent")
    report.installed = existing is not None
    report.current = existing == plan.content
    if query:
        report.commands.append(_run(plan.platform.status_command(plan.spec)))
    return report
