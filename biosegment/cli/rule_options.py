"""Click options made from the engine's option rules: one ``--dashed`` option per rule.

The training and segmentation settings each list the options a person sets as rules (a name,
bounds or choices, and help text with the default); the API's requests are made from the same
rules. :func:`options_from` turns such a list into a decorator that adds the options to a
command, in the rules' order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["options_from"]


def options_from(
    rules: Sequence[Any], kind_of: Callable[[Any], click.ParamType]
) -> Callable[[Callable], Callable]:
    """A decorator adding one option per rule; ``kind_of(rule)`` gives its click type."""

    def decorate(command: Callable) -> Callable:
        for rule in reversed(rules):  # click lists the last decorator applied first
            text = rule.describe()
            command = click.option(
                "--" + rule.name.replace("_", "-"),
                rule.name,
                type=kind_of(rule),
                default=None,
                help=text[:1].upper() + text[1:] + ".",
            )(command)
        return command

    return decorate
