"""Run bioimageio.core's ``test_model`` on a package and print the outcome as JSON.

Runs in the checker's own environment (``.venv-bioimageio``, built by ``make checker``), not in
the test process: bioimageio.core pins a pydantic that the main environment cannot have. Any
attempt to open a network connection fails the check, so a package must be self-contained.

Usage: ``python bioimageio_checker.py PACKAGE WEIGHT_FORMAT``
"""

from __future__ import annotations

import json
import socket
import sys


def _refuse_network(*args, **kwargs):
    raise AssertionError(f"the checker tried to reach the network: {args!r}")


def main(package: str, weight_format: str) -> None:
    socket.socket.connect = _refuse_network
    socket.create_connection = _refuse_network
    import torch
    from bioimageio.core import test_model

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    summary = test_model(package, weight_format=weight_format)
    details = [{"name": d.name, "status": d.status} for d in summary.details]
    json.dump(
        {"status": summary.status, "details": details, "report": summary.format()}, sys.stdout
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
