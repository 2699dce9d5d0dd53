"""The segmentation options of ``biosegment segment``, made from the engine's rules.

Each option of :data:`biosegment.engine.segment_settings.PERSON_OPTIONS` becomes a ``--dashed``
option with the same bounds, choices and help text as the API's segment request. The engine
package imports torch, which no other command needs, so the options are built the first time
``segment`` parses its arguments or prints its help, not when the CLI starts.
"""

from __future__ import annotations

import click

__all__ = ["SegmentCommand"]


def _option(rule) -> click.Option:
    if rule.choices:
        kind: click.ParamType = click.Choice(rule.choices)
    else:
        kind = click.IntRange(min=rule.low, max=rule.high)
    text = rule.describe()
    return click.Option(
        ["--" + rule.name.replace("_", "-"), rule.name],
        type=kind,
        default=None,
        help=text[:1].upper() + text[1:] + ".",
    )


class SegmentCommand(click.Command):
    """A command whose segmentation options are added from the engine's rules on first use.

    They go right after ``--name``, in the order of the rules.
    """

    _with_settings = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._with_settings:
            from biosegment.engine.segment_settings import PERSON_OPTIONS

            names = {param.name for param in self.params}
            after = next(
                (i + 1 for i, param in enumerate(self.params) if param.name == "name"),
                len(self.params),
            )
            added = [_option(rule) for rule in PERSON_OPTIONS if rule.name not in names]
            self.params[after:after] = added
            self._with_settings = True
        return super().get_params(ctx)
