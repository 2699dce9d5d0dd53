"""The training options of ``biosegment train``, made from the engine's rules.

Each option of :data:`biosegment.engine.train_settings.PERSON_OPTIONS` becomes a ``--dashed``
option with the same bounds and help text as the API's train request. ``train_settings`` imports
no torch, so the options are built when the CLI is imported.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from biosegment.engine.train_settings import PERSON_OPTIONS, OptionRule

__all__ = ["training_options"]


def _option(rule: OptionRule) -> Callable:
    if rule.kind is int:
        kind = click.IntRange(min=int(rule.low), max=int(rule.high))
    else:
        kind = click.FloatRange(min=rule.low, max=rule.high, min_open=rule.low_open)
    text = rule.describe()
    return click.option(
        "--" + rule.name.replace("_", "-"),
        rule.name,
        type=kind,
        default=None,
        help=text[:1].upper() + text[1:] + ".",
    )


def training_options(command: Callable) -> Callable:
    """Add one option per training rule to ``command``, listed in the rules' order."""
    for rule in reversed(PERSON_OPTIONS):  # click lists the last decorator applied first
        command = _option(rule)(command)
    return command
