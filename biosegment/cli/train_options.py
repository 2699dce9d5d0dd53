"""The training options of ``biosegment train``, made from the engine's rules.

Each option of :data:`biosegment.engine.train_settings.PERSON_OPTIONS` becomes a ``--dashed``
option with the same bounds and help text as the API's train request. ``train_settings`` imports
no torch, so the options are built when the CLI is imported.
"""

from __future__ import annotations

import click

from biosegment.cli.rule_options import options_from
from biosegment.engine.train_settings import PERSON_OPTIONS, OptionRule

__all__ = ["training_options"]


def _kind(rule: OptionRule) -> click.ParamType:
    if rule.kind is int:
        return click.IntRange(min=int(rule.low), max=int(rule.high))
    return click.FloatRange(min=rule.low, max=rule.high, min_open=rule.low_open)


#: Adds one option per training rule to a command, listed in the rules' order.
training_options = options_from(PERSON_OPTIONS, _kind)
