"""The segmentation options of ``biosegment segment``, made from the engine's rules.

Each option of :data:`biosegment.engine.segment_settings.PERSON_OPTIONS` becomes a ``--dashed``
option with the same bounds, choices and help text as the API's segment request.
``segment_settings`` imports no torch, so the options are built when the CLI is imported.
"""

from __future__ import annotations

import click

from biosegment.cli.rule_options import options_from
from biosegment.engine.segment_settings import PERSON_OPTIONS, SegmentOption

__all__ = ["segment_options"]


def _kind(rule: SegmentOption) -> click.ParamType:
    if rule.choices:
        return click.Choice(rule.choices)
    return click.IntRange(min=rule.low, max=rule.high)


#: Adds one option per segmentation rule to a command, listed in the rules' order.
segment_options = options_from(PERSON_OPTIONS, _kind)
