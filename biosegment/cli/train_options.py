"""The training options of ``biosegment train``, made from the engine's rules.

Each option of :data:`biosegment.engine.train_settings.PERSON_OPTIONS` becomes a ``--dashed``
option with the same bounds and help text as the API's train request. The engine imports torch,
which no other command needs, so the options are built the first time ``train`` parses its
arguments or prints its help, not when the CLI starts.
"""

from __future__ import annotations

import click

__all__ = ["TrainCommand"]


def _option(rule) -> click.Option:
    if rule.kind is int:
        kind = click.IntRange(min=int(rule.low), max=int(rule.high))
    else:
        kind = click.FloatRange(min=rule.low, max=rule.high, min_open=rule.low_open)
    text = rule.describe()
    return click.Option(
        ["--" + rule.name.replace("_", "-"), rule.name],
        type=kind,
        default=None,
        help=text[:1].upper() + text[1:] + ".",
    )


class TrainCommand(click.Command):
    """A command whose training options are appended from the engine's rules on first use."""

    _with_settings = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._with_settings:
            from biosegment.engine.train_settings import PERSON_OPTIONS

            names = {param.name for param in self.params}
            first = next(
                (i for i, param in enumerate(self.params) if param.name == "name"),
                len(self.params),
            )
            added = [_option(rule) for rule in PERSON_OPTIONS if rule.name not in names]
            self.params[first:first] = added
            self._with_settings = True
        return super().get_params(ctx)
