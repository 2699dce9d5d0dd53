"""Which names a person may give to things created through the UI or the API.

New annotations, segmentations and models become folders in the data folder, so their names must
be plain folder names: no separators, no ``..``, no hidden or control characters. Names of
existing things are only looked up in the catalog and may be anything the folder scan found.
"""

from __future__ import annotations

import re

from biosegment.webui.errors import ApiError

__all__ = ["check_new_name", "NAME_RULE"]

_ALLOWED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")
NAME_RULE = ("1-100 characters: letters, digits, '.', '_', '-' and spaces, starting with a letter "
             "or digit, without '..'")


def check_new_name(value: str, *, field: str = "name") -> str:
    """Return ``value`` stripped if it may name a new folder; else raise a 400 naming ``field``."""
    name = (value or "").strip()
    if not name:
        raise ApiError(400, f"{field} must not be empty", field=field)
    if "/" in name or "\\" in name or ".." in name or not _ALLOWED.match(name):
        raise ApiError(400, f"{field} {name!r} is not allowed: {NAME_RULE}", field=field)
    return name
