"""Docstrings as readable API descriptions: Markdown that the /docs page renders.

flask-openapi3 copies a view's docstring into the OpenAPI document with ``<br/>`` for each line
break, and our docstrings use reStructuredText roles (``:class:`...```) and double backquotes;
Swagger UI renders Markdown, so the raw markup showed. This turns line breaks back into
Markdown paragraphs and the reST markup into code spans.
"""

from __future__ import annotations

import re

__all__ = ["plain_description"]

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def plain_description(text: str) -> str:
    """``text`` with ``<br/>`` as line breaks, reST roles and literals as Markdown code."""
    text = _BREAK.sub("\n", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    text = _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)
    # docstring lines were wrapped at 100 columns: join them, keep blank-line paragraphs
    paragraphs = [
        " ".join(line.strip() for line in block.splitlines() if line.strip())
        for block in re.split(r"\n\s*\n", text)
    ]
    return "\n\n".join(p for p in paragraphs if p)
