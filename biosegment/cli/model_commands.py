"""CLI commands that move models between BioSegment and other tools: ``models export`` and
``models import``.

``biosegment models`` on its own still lists the models (the listing command becomes the
group's default action, with its ``--json`` option), so scripts that call it keep working.
Export writes TorchScript, ONNX or a bioimage.io package, never over an existing folder and over
an existing file only when asked; import brings a bioimage.io package whose weights are a U-Net
into the data folder's ``models/``, next to the models there and never over one.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.data_commands import models as list_models
from biosegment.cli.root import main
from biosegment.errors import InputError
from biosegment.folder_names import MODELS_DIR, TRASH_DIR

__all__ = ["models_group", "export_model", "import_model"]

JSON_HELP = "Print machine-readable JSON instead of text."
_FORMATS = ("onnx", "torchscript", "bioimageio")


def _group_around(listing: click.Command | None) -> click.Group:
    """The ``models`` group: lists models when no subcommand is given."""
    if isinstance(listing, click.Group):
        return listing

    def list_or_continue(**params) -> None:
        context = click.get_current_context()
        if context.invoked_subcommand is None and listing is not None:
            context.invoke(listing, **params)

    return click.Group(
        name="models",
        callback=list_or_continue,
        invoke_without_command=True,
        params=list(listing.params) if listing is not None else [],
        help=(
            (listing.help or "List the models in the data folder.").strip()
            + "\n\nWith a subcommand: export a model for other tools, or import one."
        ),
        short_help="List, export and import models.",
    )


models_group = _group_around(list_models)
main.add_command(models_group)


def _resolve_model(app: AppContext, model: str) -> Path:
    """A model's checkpoint: a path to a file or model folder, else a catalog name."""
    candidate = Path(model)
    if candidate.exists():
        return candidate
    from biosegment.cli.data_commands import refresh_catalog

    catalog = refresh_catalog(app)
    return catalog.path_of(catalog.require_usable("model", model))


def _test_slice(app: AppContext, dataset: str | None):
    if dataset is None:
        return None
    from biosegment.cli.data_commands import refresh_catalog
    from biosegment.volumes import open_volume

    catalog = refresh_catalog(app)
    row = catalog.require_usable("dataset", dataset, where="test-dataset")
    path = catalog.path_of(row)
    with open_volume(path, row.get("file_type")) as reader:
        if reader.dtype.name != "uint8":
            raise InputError(
                f"dataset {dataset!r} holds {reader.dtype.name}; the test image of "
                "a package must be uint8",
                where="test-dataset",
            )
        return reader.read_slice(reader.shape[0] // 2)


@models_group.command("export")
@click.argument("model")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(_FORMATS),
    required=True,
    help="onnx (onnxruntime, OpenCV, DJL), torchscript (PyTorch, deepImageJ) or "
    "bioimageio (a Model Zoo package with all three weight formats).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=True),
    default=None,
    help="File to write, or an existing folder to write the default file name into "
    "(default: <model>.onnx, <model>.torchscript.pt or <model>.bioimageio.zip in the "
    "current folder). bioimageio: a new path not ending in .zip becomes a package folder.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing file of that name (without it, an existing file is refused).",
)
@click.option(
    "--test-dataset",
    default=None,
    help="bioimageio only: dataset whose middle slice becomes the package's test "
    "image (default: random pixels).",
)
@click.option(
    "--author",
    "authors",
    multiple=True,
    help="bioimageio only: an author's name; repeat for several.",
)
@click.option(
    "--license",
    "license_id",
    default="MIT",
    show_default=True,
    help="bioimageio only: SPDX licence identifier of the weights.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def export_model(
    app: AppContext,
    model: str,
    export_format: str,
    output: str | None,
    overwrite: bool,
    test_dataset: str | None,
    authors: tuple[str, ...],
    license_id: str,
    as_json: bool,
) -> None:
    """Export MODEL (a name from `biosegment models`, or a .pytorch file or model folder).

    The exported network computes one logit per class (the class id is the argmax over
    classes) for input already scaled to [0, 1] as the model's card says under
    `normalisation`: divided by the pixel type's range (uint8 by 255), or mapped from the
    volume's 1st to 99th percentile to 0 to 1 and clipped (the demo model and models
    fine-tuned from it). ONNX and TorchScript leave that scaling to the caller (the export
    prints which one the model needs); a bioimageio package states it as preprocessing.
    An existing file is replaced only with --overwrite; an existing folder never is (the
    file goes inside it).
    """
    from biosegment.engine import load_model
    from biosegment.engine.export import FILE_SUFFIXES, export_onnx, export_torchscript
    from biosegment.engine.intensity import describe_normalisation
    from biosegment.engine.model_publish import model_folder_name

    checkpoint = _resolve_model(app, model)
    network, card = load_model(checkpoint)
    default_name = f"{model_folder_name(card.name)}{FILE_SUFFIXES[export_format]}"
    target = _export_target(output, default_name, overwrite=overwrite)
    if export_format == "onnx":
        export_onnx(network, target, card=card)
    elif export_format == "torchscript":
        export_torchscript(network, target, card=card)
    else:
        from biosegment.engine.bioimageio import export_bioimageio

        export_bioimageio(
            network,
            card,
            target,
            test_input=_test_slice(app, test_dataset),
            authors=[{"name": a} for a in authors] or None,
            license_id=license_id,
        )
    scaling = describe_normalisation(card.normalisation)
    document = {
        "model": card.name,
        "format": export_format,
        "output": str(target),
        "bytes": _size(target),
        "input_scaling": scaling,
    }
    if as_json:
        emit_json(document)
        return
    click.echo(f"Exported {card.name} as {export_format}: {target}")
    click.echo(f"Input: scaled to [0, 1] before the network; {scaling}.")


def _export_target(output: str | None, default_name: str, *, overwrite: bool) -> Path:
    """Where an export goes: ``--output`` as a file name, or a folder (an existing one, or a
    name ending in a separator) that gets the default file name inside."""
    if not output:
        target = Path.cwd() / default_name
    elif Path(output).is_dir() or output.endswith(("/", os.sep)):
        target = Path(output) / default_name
    else:
        target = Path(output)
    if target.is_dir():
        raise InputError(
            "is a folder; name a file to write, or a folder to write "
            f"{default_name} into (a folder is never replaced)",
            source=target,
            where="--output",
        )
    if os.path.lexists(target) and not overwrite:
        raise InputError(
            "already exists and was left as it is; pass --overwrite to replace it, or "
            "choose another --output",
            source=target,
            where="--output",
        )
    return target


@models_group.command("import")
@click.argument("package", type=click.Path(exists=True))
@click.option(
    "--name",
    default=None,
    help="Name of the new model folder under models/ (default: the package's name).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="When a model of that name exists, move it (weights, card, logs) to the data "
    "folder's trash, .biosegment-trash/, and import in its place (without it, the import "
    "is refused).",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_app
def import_model(
    app: AppContext, package: str, name: str | None, replace: bool, as_json: bool
) -> None:
    """Import a bioimage.io model PACKAGE (zip or folder) whose weights are a U-Net.

    The network is rebuilt from its state-dict weights and must reproduce the package's test
    output; it is saved as models/<name>/ and appears in the catalog. A model already named
    so is never overwritten: the import is refused unless --replace moves the old one to the
    trash. Oversized files and paths leading out of the package are refused before reading.
    """
    from biosegment.cli.data_commands import refresh_catalog
    from biosegment.engine.bioimageio import import_bioimageio
    from biosegment.engine.model_publish import ModelExistsError
    from biosegment.trash import move_to_trash

    root = app.require_root()
    trashed: list[Path] = []

    def make_room(existing: list[Path]) -> None:
        trashed.append(move_to_trash(root, existing, why="replaced by import"))

    try:
        checkpoint = import_bioimageio(
            Path(package),
            root / MODELS_DIR,
            name=name,
            make_room=make_room if replace else None,
            held_names=app.catalog().reserved_model_names(),
        )
    except ModelExistsError as exc:
        raise InputError(
            f"{exc.reason}. Import it under another name with --name NEWNAME, or pass "
            f"--replace to move the old model to {TRASH_DIR}/ first",
            where=exc.where,
        ) from None
    refresh_catalog(app)
    document = {
        "model": checkpoint.parent.name,
        "location": str(checkpoint.relative_to(root)),
    }
    if trashed:
        document["replaced_into"] = str(trashed[0].relative_to(root))
    if as_json:
        emit_json(document)
        return
    click.echo(f"Imported {package} as model {document['model']} ({document['location']})")
    if trashed:
        click.echo(f"The model it replaced is in {document['replaced_into']}")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
