"""The ``biosegment`` click group: global options, and the context every command receives.

Command modules (``*_commands.py``) register their commands on :data:`main`;
:mod:`biosegment.cli` imports them all, so ``biosegment.cli:main`` is the complete program.
"""

from __future__ import annotations

import click

from biosegment import __version__
from biosegment.cli.context import AppContext

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file to use (default: BIOSEGMENT_CONFIG, ./biosegment.toml, then the "
    "user's config folder).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data folder to use, overriding data_dir from the config and the environment.",
)
@click.version_option(__version__, "--version", help="Show the version and exit.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, data_dir: str | None) -> None:
    """BioSegment: segment electron-microscopy volumes with deep learning.

    Drop image stacks into the data folder's EM/ folder; BioSegment catalogs them, segments them
    with a U-Net, and trains models from your annotations.
    """
    ctx.obj = AppContext(config_path=config_path, data_dir=data_dir)
