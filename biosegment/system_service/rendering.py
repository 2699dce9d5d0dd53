"""Fill the service templates of ``packaging/`` from a :class:`ServiceSpec`.

Templates use ``${placeholder}`` fields (:class:`string.Template`); every value is escaped for
the format it lands in before it is put there: systemd's quoting and its ``%`` specifiers and
``$`` variables, XML text for launchd property lists and Task Scheduler definitions, and the
Windows command-line rules for a task's arguments. A data folder called ``lab data 100%`` or
``<a&b>`` therefore yields a definition that means exactly that folder. Templates are read from
the installed package (``biosegment/packaging/``) when a wheel ships them, else from the
source tree's ``packaging/`` folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape as xml_escape

from biosegment.errors import BioSegmentError
from biosegment.system_service.spec import ServiceSpec

__all__ = [
    "template_dirs",
    "read_template",
    "render_systemd",
    "render_launchd",
    "render_windows_task",
    "systemd_quote",
    "systemd_path",
    "launchd_label",
    "windows_task_name",
]

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def template_dirs() -> list[Path]:
    """Where templates are looked for, in order: inside the package, then the source tree."""
    return [_PACKAGE_DIR / "packaging", _PACKAGE_DIR.parent / "packaging"]


def read_template(relative: str) -> Template:
    for folder in template_dirs():
        path = folder / relative
        if path.is_file():
            return Template(path.read_text(encoding="utf-8"))
    raise BioSegmentError(
        f"service template {relative} not found in {' or '.join(str(d) for d in template_dirs())}"
    )


def _fill(relative: str, values: dict[str, str]) -> str:
    # substitute (not safe_substitute): a placeholder left unfilled is a bug, not a feature.
    return read_template(relative).substitute(values)


# -- systemd -----------------------------------------------------------------------------------


def _systemd_plain(text: str) -> str:
    """Escape systemd's specifiers (``%``) and variable references (``$``)."""
    return text.replace("%", "%%").replace("$", "$$")


def systemd_quote(arg: str) -> str:
    """One ExecStart argument: double-quoted when it needs to be, with C-style escapes."""
    text = _systemd_plain(arg)
    if text and not any(ch in text for ch in " \t\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_path(path: Path) -> str:
    """A path for a directive that takes one path (WorkingDirectory=)."""
    return _systemd_plain(str(path))


def render_systemd(spec: ServiceSpec) -> str:
    if spec.user_scope:
        template, account_lines = "systemd/biosegment-user.service.in", ""
    else:
        template = "systemd/biosegment.service.in"
        account_lines = f"User={spec.account}"
        if spec.group:
            account_lines += f"\nGroup={spec.group}"
    return _fill(
        template,
        {
            "description": _systemd_plain(spec.description),
            "account_lines": _systemd_plain(account_lines),
            # RequiresMountsFor= takes a list of paths: quote so that a space stays inside one.
            "mount_path": systemd_quote(str(spec.working_dir)),
            "working_dir": systemd_path(spec.working_dir),
            "exec_start": " ".join(systemd_quote(arg) for arg in spec.command),
            "name": spec.name,
        },
    )


# -- launchd -----------------------------------------------------------------------------------


def launchd_label(spec: ServiceSpec) -> str:
    return f"org.biosegment.{spec.name}"


def render_launchd(spec: ServiceSpec) -> str:
    arguments = "\n".join(f"    <string>{xml_escape(arg)}</string>" for arg in spec.command)
    values = {
        "label": xml_escape(launchd_label(spec)),
        "program_arguments": arguments,
        "working_dir": xml_escape(str(spec.working_dir)),
        "log_file": xml_escape(str(spec.log_file)),
    }
    if spec.user_scope:
        return _fill("launchd/biosegment-agent.plist.in", values)
    return _fill("launchd/biosegment-daemon.plist.in", {**values, "user": xml_escape(spec.account)})


# -- Windows Task Scheduler --------------------------------------------------------------------


def windows_task_name(spec: ServiceSpec) -> str:
    return f"\\BioSegment\\{spec.name}"


def render_windows_task(spec: ServiceSpec, *, user: str) -> str:
    """The task definition; ``user`` is the account it runs as (the current one for --user)."""
    template = (
        "windows/biosegment-user-task.xml.in"
        if spec.user_scope
        else "windows/biosegment-task.xml.in"
    )
    return _fill(
        template,
        {
            "description": xml_escape(spec.description),
            "task_name": xml_escape(windows_task_name(spec)),
            "user": xml_escape(user),
            "command": xml_escape(spec.command[0]),
            "arguments": xml_escape(subprocess.list2cmdline(spec.command[1:])),
            "working_dir": xml_escape(str(spec.working_dir)),
        },
    )
