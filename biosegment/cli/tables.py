"""Plain-text tables and value formatting for CLI output (no colour codes, safe in pipes)."""

from __future__ import annotations

from typing import Sequence

import click

__all__ = ["print_table", "format_shape"]


def format_shape(shape: Sequence | None) -> str:
    if not shape:
        return ""
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in shape)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "") -> None:
    if not rows:
        if empty:
            click.echo(empty)
        return
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
