"""CLI commands that run the daemon as a system service: ``service install|uninstall|status``.

The service runs ``biosegment run --headless`` for the configured data folder with the same
Python and config file as the command that installed it. ``--user`` uses the user's own service
manager (systemd --user, a launchd agent, a logon task) and needs no administrator rights.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.root import main

__all__ = ["service"]

JSON_HELP = "Print machine-readable JSON instead of text."


def _scope_options(func):
    """The options every service subcommand shares: which service, where, for which system."""
    options = [
        click.option(
            "--user",
            "user_scope",
            is_flag=True,
            help="The user's own service manager (systemd --user, a launchd agent, a "
            "logon task) instead of a system-wide service.",
        ),
        click.option(
            "--name",
            default="biosegment",
            show_default=True,
            help="Service name; give each data folder served on one machine its own.",
        ),
        click.option(
            "--platform",
            "platform",
            type=click.Choice(["linux", "macos", "windows"]),
            default=None,
            help="Write the definition for this system (default: this one); useful with --dry-run.",
        ),
        click.option(
            "--unit-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Folder for the definition file instead of the service manager's "
            "own (packaging, tests).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _plan(
    app: AppContext,
    *,
    user_scope: bool,
    name: str,
    platform: str | None,
    unit_dir: Path | None,
    run_as: str | None = None,
):
    from biosegment.system_service import plan_service

    app.require_root()
    return plan_service(
        app.config,
        user_scope=user_scope,
        name=name,
        account=run_as,
        platform=platform,
        target_dir=unit_dir,
    )


def _command_line(plan, command: list[str]) -> str:
    """A command as its platform's shell would take it."""
    if plan.platform.key == "windows":
        return subprocess.list2cmdline(command)
    return shlex.join(command)


def _echo_commands(report) -> None:
    for outcome in report.commands:
        status = (
            "ok"
            if outcome.ok
            else (f"exit {outcome.returncode}" if outcome.returncode is not None else "not run")
        )
        click.echo(f"  $ {shlex.join(outcome.command)}  [{status}]")
        for line in outcome.output.splitlines():
            click.echo(f"    {line}")


@main.group()
def service() -> None:
    """Run BioSegment as a system service that starts at boot and restarts after a crash.

    The definitions are filled from the templates in packaging/ (systemd units, launchd
    property lists, Windows Task Scheduler tasks).
    """


@service.command()
@_scope_options
@click.option(
    "--run-as",
    default=None,
    help="Account a system service runs as (default: the owner of the data folder; "
    "on Windows the installing user).",
)
@click.option(
    "--no-start", is_flag=True, help="Only write the definition; do not register or start it."
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a different definition already installed (kept as .previous).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the definition and the commands that would run; change nothing.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def install(
    app: AppContext,
    user_scope: bool,
    name: str,
    platform: str | None,
    unit_dir: Path | None,
    run_as: str | None,
    no_start: bool,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Install the service for the data folder and start it."""
    from biosegment.system_service import install_service

    plan = _plan(
        app, user_scope=user_scope, name=name, platform=platform, unit_dir=unit_dir, run_as=run_as
    )
    if dry_run:
        commands = [] if no_start else plan.install_commands
        if as_json:
            emit_json({"definition": str(plan.path), "content": plan.content, "commands": commands})
            return
        click.echo(f"# {plan.path}")
        click.echo(plan.content, nl=False)
        for command in commands:
            click.echo(f"# then: {_command_line(plan, command)}")
        return
    report = install_service(plan, start=not no_start, force=force)
    if as_json:
        emit_json(report.as_dict())
    else:
        verb = {"written": "Wrote", "unchanged": "Kept (already up to date)"}[report.action]
        click.echo(
            f"{verb} {report.definition} "
            f"({plan.platform.manager}, {report.scope} service {report.name!r})"
        )
        if report.previous is not None:
            click.echo(f"  the definition it replaced is kept as {report.previous}")
        _echo_commands(report)
    if not report.ok:
        raise click.ClickException(
            f"the {plan.platform.manager} commands did not all succeed; the definition is in "
            f"place, register it by hand with the commands above"
        )


@service.command()
@_scope_options
@click.option(
    "--no-stop",
    is_flag=True,
    help="Only remove the definition; do not stop or unregister the service.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def uninstall(
    app: AppContext,
    user_scope: bool,
    name: str,
    platform: str | None,
    unit_dir: Path | None,
    no_stop: bool,
    as_json: bool,
) -> None:
    """Stop and unregister the service and remove its definition. The data folder is untouched."""
    from biosegment.system_service import uninstall_service

    plan = _plan(app, user_scope=user_scope, name=name, platform=platform, unit_dir=unit_dir)
    report = uninstall_service(plan, stop=not no_stop)
    if as_json:
        emit_json(report.as_dict())
        return
    if report.action == "removed":
        click.echo(f"Removed {report.definition}")
    else:
        click.echo(f"No service definition at {report.definition}")
    _echo_commands(report)


@service.command()
@_scope_options
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def status(
    app: AppContext,
    user_scope: bool,
    name: str,
    platform: str | None,
    unit_dir: Path | None,
    as_json: bool,
) -> None:
    """Show whether the service is installed, up to date, and what its service manager says."""
    from biosegment.system_service import service_status

    plan = _plan(app, user_scope=user_scope, name=name, platform=platform, unit_dir=unit_dir)
    report = service_status(plan)
    if as_json:
        emit_json(report.as_dict())
        return
    if not report.installed:
        click.echo(f"Not installed (would be {report.definition})")
    else:
        freshness = (
            "up to date"
            if report.current
            else "differs from what install would write now (run install --force to update it)"
        )
        click.echo(f"Installed: {report.definition}, {freshness}")
    _echo_commands(report)
