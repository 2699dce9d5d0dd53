"""Names of job outputs: checked to be plain folder names, and chosen so nothing is overwritten.

A segmentation lands in ``segmentations/<dataset>/<name>/`` and a trained model in
``models/<name>/``. A name a person typed must be one path component a file browser shows
(no separators, no ``..``, no leading dot, which would hide it from the watcher); a name we
choose gets ``-2``, ``-3``, ... until it collides with nothing on disk, in the catalog, or in a
job that has not finished yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from biosegment.errors import InputError

__all__ = ["checked_name", "unique_name", "NAME_PATTERN"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def checked_name(value: str, *, where: str) -> str:
    """Return ``value`` if it is a safe output name, else raise :class:`InputError` at ``where``."""
    if (
        not isinstance(value, str)
        or not NAME_PATTERN.match(value)
        or ".." in value
        or value.lower().endswith((".tmp", ".part"))
    ):
        raise InputError(
            f"{value!r} is not a valid name: use letters, digits, '.', '_', '+' or "
            "'-', starting with a letter or digit",
            where=where,
        )
    return value


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base`` or the first of ``base-2``, ``base-3``, ... that is not in ``taken``."""
    taken = set(taken)
    stem = re.sub(r"[^A-Za-z0-9._+-]", "-", base).strip("-.") or "output"
    if stem not in taken:
        return stem
    counter = 2
    while f"{stem}-{counter}" in taken:
        counter += 1
    return f"{stem}-{counter}"
