"""CLI command ``biosegment pyramid``: build the cached resolution pyramid of large datasets.

A TIFF or slice-folder dataset with slices of many thousand pixels has no pyramid of its own,
so the viewer would have to read whole full-resolution slices to show them zoomed out. This
command reads such a dataset once and stores its halved levels in the data folder's cache
(``.biosegment/cache/pyramids``); the viewer then zooms out through them. OME-Zarr and N5
datasets that carry their own pyramid need none.
"""

from __future__ import annotations

import click

from biosegment.cli.context import AppContext, emit_json, pass_app
from biosegment.cli.root import main

__all__ = ["pyramid"]


@main.command()
@click.argument("datasets", nargs=-1)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every dataset whose slices are larger than 2048 pixels on a side.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
)
@pass_app
def pyramid(app: AppContext, datasets: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Build the cached pyramid of DATASETS (names from `biosegment datasets`) for the viewer.

    Datasets with a pyramid of their own, or small enough not to need one, are skipped; a
    pyramid already built for the current version of the files is kept.
    """
    from biosegment.cli.data_commands import refresh_catalog
    from biosegment.volumes import PyramidCache, build_pyramid, needs_pyramid, open_volume

    catalog = refresh_catalog(app)
    if every:
        rows = [d for d in catalog.datasets() if d.get("state") == "ok"]
    elif datasets:
        rows = [catalog.require_usable("dataset", name) for name in datasets]
    else:
        raise click.UsageError("name one or more datasets, or use --all")
    cache = PyramidCache.for_data_folder(app.root)
    results = []
    for row in rows:
        with open_volume(catalog.path_of(row), row.get("file_type")) as reader:
            if not needs_pyramid(reader):
                reason = (
                    "has its own pyramid"
                    if len(reader.levels) > 1
                    else "is small enough without one"
                )
                results.append({"dataset": row["name"], "built": False, "reason": reason})
                continue
            existing = cache.find(reader.info)
            store = existing or _build_with_progress(
                reader, cache, row["name"], as_json, build_pyramid
            )
            results.append({"dataset": row["name"], "built": existing is None, "store": str(store)})
    if as_json:
        emit_json(results)
        return
    for result in results:
        if "store" in result:
            verb = "built" if result["built"] else "up to date"
            click.echo(f"{result['dataset']}: pyramid {verb} ({result['store']})")
        else:
            click.echo(f"{result['dataset']}: skipped, {result['reason']}")


def _build_with_progress(reader, cache, name: str, quiet: bool, build):
    if quiet:
        return build(reader, cache)
    with click.progressbar(length=1000, label=f"{name}: building pyramid") as bar:
        done = 0

        def advance(fraction: float) -> None:
            nonlocal done
            step = int(fraction * 1000) - done
            if step > 0:
                bar.update(step)
                done += step

        return build(reader, cache, progress=advance)
