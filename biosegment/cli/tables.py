"""Plain-text tables and value formatting for CLI output (no colour codes, safe in pipes).

Cells are printed with their control characters escaped (a newline as ``\\n``, an escape as
``\\x1b``, a right-to-left override as ``\\u202e``): names and reasons come from people and
files, and a login name holding a newline must not print as a forged row of its own.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import click

__all__ = ["print_table", "format_shape", "printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every control or format character written as an escape sequence."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def format_shape(shape: Sequence | None) -> str:
    if not shape:
        return ""
    return " x ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in shape)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "") -> None:
    if not rows:
        if empty:
            click.echo(empty)
        return
    cells = [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
