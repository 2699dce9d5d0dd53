"""The segmentation options of ``biosegment segment``, made from the engine's rules.

Each option of :data:`biosegment.engine.segment_settings.PERSON_OPTIONS` becomes a ``--dashed``
option with the same bounds, choices and help text as the API's segment request.
``segment_settings`` imports no torch, so the options are built when the CLI is imported.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from biosegment.engine.segment_settings import PERSON_OPTIONS, SegmentOption

__all__ = ["segment_options"]


def _option(rule: SegmentOption) -> Callable:
    if rule.choices:
        kind: click.ParamType = click.Choice(rule.choices)
    else:
        kind = click.IntRange(min=rule.low, max=rule.high)
    text = rule.describe()
    return click.option(
        "--" + rule.name.replace("_", "-"),
        rule.name,
        type=kind,
        default=None,
        help=text[:1].upper() + text[1:] + ".",
    )


def segment_options(command: Callable) -> Callable:
    """Add one option per segmentation rule to ``command``, listed in the rules' order."""
    for rule in reversed(PERSON_OPTIONS):  # click lists the last decorator applied first
        command = _option(rule)(command)
    return command
