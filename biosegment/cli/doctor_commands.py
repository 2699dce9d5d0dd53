"""CLI command ``doctor``: check a data folder's state and rebuild what is missing or damaged."""

from __future__ import annotations

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.root import main

__all__ = ["doctor"]

_MARKS = {"ok": "ok", "repaired": "REPAIRED", "problem": "PROBLEM", "skipped": "skipped"}


@main.command()
@click.option("--check", "check_only", is_flag=True, help="Only report; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def doctor(app: AppContext, check_only: bool, as_json: bool) -> None:
    """Check the data folder's catalog, job queue, layout and contents; rebuild what is broken.

    A missing or damaged catalog.db is rebuilt from the files in the data folder (with the
    jobs still readable in the damaged file); a missing or damaged queue.db is recreated and
    refilled with the catalog's waiting jobs; a damaged accounts.db gives back the accounts,
    tokens and audit entries it still holds; a secrets.toml others can read is made private.
    Damaged files are kept beside the new ones. Datasets, models, segmentations and
    annotations that cannot be read (a truncated TIFF, say) are listed by file and reason;
    they are yours to fix. A running daemon or worker is fine: doctor then only reports
    (stop them to let it repair). Exits with status 1 when something is still broken.
    """
    from biosegment.doctor import run_doctor

    report = run_doctor(app.config, repair=not check_only)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(f"Data folder: {report.data_dir}")
        for finding in report.findings:
            click.echo(f"  {finding.subject:<9}{_MARKS[finding.state]:<10}{finding.detail}")
            for line in finding.problems:
                click.echo(f"{'':<21}{line}")
        click.echo("Healthy." if report.healthy else "Still broken: see PROBLEM above.")
    if not report.healthy:
        raise SystemExit(1)
