"""The ``biosegment`` command line: one click group, commands grouped by concern in sibling modules.

Every command and option carries help text (``tests/test_cli_docs.py`` fails otherwise) and
commands whose output a script would parse take ``--json``. Errors from bad input are printed
as one line naming the file or key, with exit status 1, never as a traceback.
"""

from __future__ import annotations

import sys

# Importing a command module registers its commands on ``main``.
from biosegment.cli import (  # noqa: F401
    accounts_commands,
    daemon_commands,
    data_commands,
    doctor_commands,
    job_commands,
    model_commands,
    pyramid_commands,
    service_commands,
    trash_commands,
)
from biosegment.cli.root import main

__all__ = ["main"]


def run() -> None:  # pragma: no cover - thin wrapper for console scripts on Windows
    sys.exit(main())
