"""CLI commands that rename annotations, segmentations and models, move them to the data
folder's trash, and bring them back: ``rename``, ``delete``, ``trash`` and ``trash restore``.

They act through the job service, like the web UI, so a thing a queued or running job uses (or
a model a project has as default) is refused with the reason, and every action gets an audit
entry. Annotations and segmentations are named ``DATASET/NAME``; models by their name.
"""

from __future__ import annotations

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.root import main
from biosegment.errors import InputError

__all__ = ["rename", "delete", "trash"]

JSON_HELP = "Print machine-readable JSON instead of text."
KIND_HELP = "What to act on: annotation or segmentation (named DATASET/NAME) or model (NAME)."
_KINDS = click.Choice(["annotation", "segmentation", "model"])


def _ref(kind: str, name: str) -> tuple[str, str | None]:
    """(name, dataset) of a ``DATASET/NAME`` (annotations, segmentations) or a model name."""
    if kind == "model":
        return name, None
    dataset, _, item = name.partition("/")
    if not dataset or not item or "/" in item:
        raise InputError(f"name a {kind} as DATASET/NAME, got {name!r}", where="NAME")
    return item, dataset


def _service(app: AppContext):
    from biosegment.catalog import refresh
    from biosegment.tasks import JobService

    service = JobService(app.config)
    refresh(service.catalog, app.require_root())  # what the folder holds now
    return service


def _record(app: AppContext, action: str, target: str, detail: dict) -> None:
    from biosegment.accounts.job_actions import record_cli_item_action

    record_cli_item_action(app.root, action, target, detail)


@main.command()
@click.argument("kind", type=_KINDS)
@click.argument("name")
@click.argument("new_name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def rename(app: AppContext, kind: str, name: str, new_name: str, as_json: bool) -> None:
    """Rename an annotation, a segmentation or a model (KIND NAME NEW_NAME).

    Refused when NEW_NAME is taken in any case, is not a plain folder name, or the thing is in
    use (a model that is a project's default_model, or anything a queued or running job uses).
    A renamed model's card keeps its old name in renamed_from, and the cards that name it
    (parent of another model, maker of a segmentation) follow the new name.
    """
    from biosegment.webui.errors import ApiError
    from biosegment.webui.names import check_new_name

    item, dataset = _ref(kind, name)
    try:
        check_new_name(new_name, field="NEW_NAME")
    except ApiError as exc:
        raise InputError(exc.message, where="NEW_NAME") from None
    service = _service(app)
    try:
        row = service.rename_item(kind, item, new_name, dataset=dataset)
    finally:
        service.close()
    _record(app, "item.rename", f"{kind} {name}", {"new_name": new_name})
    if as_json:
        emit_json(row)
        return
    click.echo(f"Renamed {kind} {name} to {new_name} ({row.get('location')})")


@main.command()
@click.argument("kind", type=_KINDS)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def delete(app: AppContext, kind: str, name: str, as_json: bool) -> None:
    """Move an annotation, a segmentation or a model (KIND NAME) to the trash.

    Its files go whole to .biosegment-trash/ in the data folder, from where `biosegment
    trash restore` brings them back. Refused when the thing is in use (a model that is a
    project's default_model, or anything a queued or running job uses).
    """
    item, dataset = _ref(kind, name)
    service = _service(app)
    try:
        entry = service.delete_item(kind, item, dataset=dataset)
    finally:
        service.close()
    _record(app, "item.delete", f"{kind} {name}", {"trash": entry["id"]})
    if as_json:
        emit_json(entry)
        return
    click.echo(f"Moved {kind} {name} to {entry['location']}")
    click.echo(f"Bring it back with: biosegment trash restore '{entry['id']}'")


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def trash(context: click.Context, as_json: bool) -> None:
    """List what the data folder's trash holds, newest first (with a subcommand: restore)."""
    if context.invoked_subcommand is None:
        context.invoke(_list_trash, as_json=as_json)


def _describe(entry: dict) -> str:
    item = entry.get("item") or {}
    if item.get("kind"):
        where = f"{item['dataset']}/" if item.get("dataset") else ""
        return f"{item['kind']} {where}{item.get('name')}"
    return ", ".join(entry["moved"])


@pass_app
def _list_trash(app: AppContext, as_json: bool) -> None:
    from biosegment.trash import trash_entries

    entries = trash_entries(app.require_root())
    if as_json:
        emit_json(entries)
        return
    from biosegment.cli.tables import print_table

    print_table(
        ["ID", "WHAT", "WHY"],
        [[e["id"], _describe(e), e.get("why") or ""] for e in entries],
        empty="The trash is empty.",
    )


@trash.command("restore")
@click.argument("entry")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def restore(app: AppContext, entry: str, as_json: bool) -> None:
    """Move trash ENTRY (an ID from `biosegment trash`) back to its place.

    Refused, with nothing moved, when its name or one of its places was taken meanwhile.
    """
    service = _service(app)
    try:
        result = service.restore_item(entry)
    finally:
        service.close()
    _record(app, "item.restore", _describe(result["entry"]), {"entry": entry})
    if as_json:
        emit_json(result)
        return
    click.echo(f"Restored {_describe(result['entry'])} from {result['entry']['location']}")
