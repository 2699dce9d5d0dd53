"""CLI commands about the data folder and its catalog: init, status, datasets, models, info, reindex."""

from __future__ import annotations

from pathlib import Path

import click

from biosegment.cli.context import AppContext, emit_json, friendly_errors, pass_app
from biosegment.cli.init_advice import config_file_note, next_command
from biosegment.cli.root import main
from biosegment.cli.tables import format_shape, print_table
from biosegment.errors import BioSegmentError

__all__ = ["init", "status", "datasets", "models", "info", "reindex"]

JSON_HELP = "Print machine-readable JSON instead of a table."

#: ``status`` exit codes, for scripts: nothing wrong, problems listed, could not look at all.
STATUS_FINE, STATUS_PROBLEMS, STATUS_FAILED = 0, 1, 2


class _StatusFailed(click.ClickException):
    """``status`` could not read the config or the data folder: a code of its own, so a
    script tells "the folder has problems" (1) from "nothing was checked" (2)."""

    exit_code = STATUS_FAILED


def refresh_catalog(app: AppContext):
    """Bring the catalog up to date with the folder (cheap: unchanged files are not re-probed)."""
    from biosegment.catalog import refresh

    catalog = app.catalog()
    refresh(catalog, app.root, forget_after=app.config.watch.forget_after_seconds)
    return catalog


@main.command()
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option(
    "--demo",
    is_flag=True,
    help="Also add the demo dataset (ISBI 2012 slices with ground truth) and the demo model; "
    "the demo project becomes setup.json's default_project, which dropped datasets join.",
)
@click.option(
    "--admin",
    is_flag=True,
    help="Also create the first administrator account, with a "
    "password shown once (done anyway when the config listens beyond 127.0.0.1).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
@friendly_errors
def init(app: AppContext, path: str | None, demo: bool, admin: bool, as_json: bool) -> None:
    """Create a data folder with its layout and a setup.json.

    PATH defaults to the configured data folder. Existing files are never overwritten.
    """
    from biosegment.catalog import open_catalog, refresh
    from biosegment.datafolder import init_data_folder

    root = Path(path) if path else app.root
    report = init_data_folder(root, demo=demo)
    catalog = open_catalog(report.root)
    try:
        refresh(catalog, report.root)
        counts = catalog.counts()
    finally:
        catalog.close()
    from biosegment.cli.accounts_commands import echo_first_admin, setup_first_admin

    first_admin = setup_first_admin(
        app, report.root, requested=admin, config_file=report.config_file
    )
    if as_json:
        emit_json({**report.as_dict(), "counts": counts, "admin": first_admin})
        return
    click.echo(f"Data folder: {report.root}")
    for item in report.created:
        click.echo(f"  created {item}")
    if report.kept:
        click.echo(f"  kept {len(report.kept)} existing item(s) unchanged")
    click.echo(
        f"Catalog: {_total(counts, 'datasets')} dataset(s), {_total(counts, 'models')} model(s)"
    )
    echo_first_admin(first_admin)
    if report.config_file is not None:
        click.echo(config_file_note(report.config_file, report.root))
    explicit = Path(app.config_path) if app.config_path else None
    click.echo(f"Start BioSegment on it: {next_command(report.root, config_path=explicit)}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show the data folder, what the catalog holds, and every problem with its reason.

    Problems are those of setup.json and the folder, then each dataset, model, segmentation
    and annotation in error or missing, named with its file and why.

    Exit status: 0 when there is no problem, 1 when problems are listed, 2 when the config or
    the data folder could not be read at all.
    """
    try:
        catalog = refresh_catalog(app)
    except (BioSegmentError, click.ClickException) as exc:
        message = exc.message if isinstance(exc, click.ClickException) else str(exc)
        raise _StatusFailed(message) from None
    counts = catalog.counts()
    problems = catalog.all_problems()
    counts["problems"] = {"total": len(problems)}  # the count and the list below agree
    config = app.config
    document = {
        "data_dir": str(app.root),
        "config_file": None if config.source is None else str(config.source),
        "catalog": str(catalog.path),
        "counts": counts,
        "problems": problems,
    }
    if as_json:
        emit_json(document)
    else:
        _print_status(document)
    if problems:
        raise SystemExit(STATUS_PROBLEMS)


def _print_status(document: dict) -> None:
    counts, problems = document["counts"], document["problems"]
    click.echo(f"Data folder: {document['data_dir']}")
    click.echo(f"Config:      {document['config_file'] or '(built-in defaults)'}")
    click.echo(f"Catalog:     {document['catalog']}")
    for table, by_state in counts.items():
        click.echo(f"{table + ':':<15}{_describe_counts(by_state)}")
    if problems:
        click.echo(f"Problems ({len(problems)}):")
        for p in problems:
            where = f" [{p['where']}]" if p.get("where") else ""
            click.echo(f"  {p.get('source') or ''}{where}: {p.get('reason')}")
    else:
        click.echo("Problems:    none")


def _total(counts: dict, table: str) -> int:
    value = counts.get(table, 0)
    return value.get("total", 0) if isinstance(value, dict) else int(value)


def _describe_counts(by_state) -> str:
    if not isinstance(by_state, dict):
        return str(by_state)
    details = ", ".join(f"{n} {state}" for state, n in by_state.items() if state != "total" and n)
    return f"{by_state.get('total', 0)}" + (f" ({details})" if details else "")


def short_reason(row: dict, width: int = 60) -> str:
    """The error of a row in error or missing, cut to fit a table cell (``--json`` has it whole)."""
    reason = row.get("error") or ""
    if not reason or row.get("state") == "ok":
        return ""
    return reason if len(reason) <= width else reason[: width - 3] + "..."


def _dataset_row(d: dict) -> list[str]:
    return [
        d["name"],
        format_shape(d.get("shape")),
        d.get("dtype") or "",
        d.get("file_type") or "",
        "yes" if d.get("ground_truth") else "",
        d.get("state") or "",
        short_reason(d),
    ]


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option(
    "--all", "include_missing", is_flag=True, help="Include datasets whose files are gone."
)
@pass_app
def datasets(app: AppContext, as_json: bool, include_missing: bool) -> None:
    """List the datasets in the data folder."""
    catalog = refresh_catalog(app)
    rows = [d for d in catalog.datasets() if include_missing or d.get("state") != "missing"]
    if as_json:
        emit_json(rows)
        return
    print_table(
        ["NAME", "SHAPE (Z,Y,X)", "DTYPE", "TYPE", "GROUND TRUTH", "STATE", "REASON"],
        [_dataset_row(d) for d in rows],
        empty="No datasets. Copy image stacks into EM/.",
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def models(app: AppContext, as_json: bool) -> None:
    """List the models in the data folder."""
    catalog = refresh_catalog(app)
    rows = catalog.models()
    if as_json:
        emit_json(rows)
        return

    def describe(m: dict) -> list[str]:
        arch = m.get("architecture") or {}
        net = (
            (
                f"{arch.get('dims', '?')}D fm{arch.get('feature_maps', '?')} "
                f"l{arch.get('levels', '?')} {arch.get('norm', '')}"
            )
            if arch
            else ""
        )
        classes = ", ".join(c.get("name", str(c.get("id"))) for c in (m.get("classes") or []))
        return [
            m["name"],
            net.strip(),
            classes,
            m.get("parent") or "",
            m.get("state") or "",
            short_reason(m),
        ]

    print_table(
        ["NAME", "NETWORK", "CLASSES", "PARENT", "STATE", "REASON"],
        [describe(m) for m in rows],
        empty="No models. Put a .pytorch file into models/ or train one.",
    )


@main.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def info(app: AppContext, dataset: str, as_json: bool) -> None:
    """Describe a dataset (by name) or an image stack (by path) without reading its pixels."""
    candidate = Path(dataset)
    if candidate.exists():
        from biosegment.volumes import probe_volume

        volume_info = probe_volume(candidate)
        document = {**volume_info.as_dict(), "nbytes": volume_info.nbytes}
    else:
        catalog = refresh_catalog(app)
        document = catalog.dataset(dataset)
    if as_json:
        emit_json(document)
        return
    for key, value in document.items():
        if key in ("shape", "voxel_size") and value:
            value = format_shape(value)
        if value is None or value == "" or value == []:
            value = "(not set)" if key == "voxel_size" else "-"
        click.echo(f"{key + ':':<16}{value}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def reindex(app: AppContext, as_json: bool) -> None:
    """Rebuild the catalog from the files in the data folder.

    Everything the folder holds (datasets, models, segmentations, annotations) comes back; job
    history is kept when the old catalog is readable.
    """
    from biosegment.catalog import reindex as rebuild

    report = rebuild(app.require_root())
    document = report.as_dict() if hasattr(report, "as_dict") else report
    if as_json:
        emit_json(document)
        return
    click.echo(f"Rebuilt the catalog of {app.root}")
    if isinstance(document, dict):
        for line in _reindex_lines(document):
            click.echo(f"  {line}")


def _reindex_lines(document: dict) -> list[str]:
    """The reindex report as sentences: per table what was added or went missing, then notes."""
    lines = []
    for table, changes in (document.get("changes") or {}).items():
        if isinstance(changes, dict):
            said = ", ".join(f"{n} {what}" for what, n in changes.items() if n) or "none"
            lines.append(f"{table + ':':<15}{said}")
    for problem in document.get("problems") or []:
        where = f" [{problem.get('where')}]" if problem.get("where") else ""
        lines.append(f"problem: {problem.get('source') or ''}{where}: {problem.get('reason')}")
    if document.get("setup"):
        lines.append(f"setup.json:    {document['setup']}")
    if document.get("seconds") is not None:
        lines.append(f"took:          {document['seconds']:.1f} s")
    lines += [f"note: {note}" for note in document.get("notes") or []]
    known = {"changes", "problems", "setup", "seconds", "notes"}
    lines += [f"{key}: {value}" for key, value in document.items() if key not in known]
    return lines
