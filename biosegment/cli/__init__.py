"""The ``biosegment`` command line: one click group, commands grouped by concern in sibling modules.

Every command and option carries help text (``tests/test_cli_docs.py`` fails otherwise) and
commands whose output a script would parse take ``--json``. Errors from bad input are printed
as one line naming the file or key, with exit status 1, never as a traceback.
"""

from __future__ import annotations

import sys

import click

from biosegment import __version__
from biosegment.cli.context import AppContext, pass_app

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file to use (default: BIOSEGMENT_CONFIG, ./biosegment.toml, then the "
                   "user's config folder).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Data folder to use, overriding data_dir from the config and the environment.")
@click.version_option(__version__, "--version", help="Show the version and exit.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, data_dir: str | None) -> None:
    """BioSegment: segment electron-microscopy volumes with deep learning.

    Drop image stacks into the data folder's EM/ folder; BioSegment catalogs them, segments them
    with a U-Net, and trains models from your annotations.
    """
    ctx.obj = AppContext(config_path=config_path, data_dir=data_dir)


# Commands register themselves on ``main`` when their module is imported.
from biosegment.cli import data_commands  # noqa: E402,F401
from biosegment.cli import model_commands, pyramid_commands  # noqa: E402,F401
from biosegment.cli import daemon_commands, job_commands  # noqa: E402,F401
from biosegment.cli import accounts_commands, doctor_commands, service_commands  # noqa: E402,F401


def run() -> None:  # pragma: no cover - thin wrapper for console scripts on Windows
    sys.exit(main())
