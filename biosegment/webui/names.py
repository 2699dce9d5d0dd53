"""Which names a person may give to things created through the UI or the API.

New annotations, segmentations and models become folders in the data folder, so their names must
be plain folder names: no separators, no ``..``, no hidden or control characters. Names of
existing things are only looked up in the catalog and may be anything the folder scan found.
"""

from __future__ import annotations

import re

from biosegment.webui.errors import ApiError

__all__ = ["check_new_name", "NAME_RULE", "NAME_PATTERN", "NAME_SCHEMA"]

_ALLOWED = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,98}[A-Za-z0-9_-])?$")
# Names Windows reserves for devices, in any case and with any extension: a folder called
# "con" or "nul.txt" cannot be opened there, and a data folder may move to a Windows machine.
_RESERVED = re.compile(r"^(?:CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(?:\.|$)", re.IGNORECASE)
NAME_RULE = (
    "1-100 characters: letters, digits, '.', '_', '-' and spaces, starting with a letter "
    "or digit and ending with one (or '_', '-'), without '..', and not a name Windows "
    "reserves (con, prn, aux, nul, com1-9, lpt1-9, with or without an extension)"
)
#: The same rule as a JSON-schema pattern, for the OpenAPI document (so clients and fuzzers
#: know it); Python's ``re`` and ECMAScript both read it.
NAME_PATTERN = (
    "^(?!(?:[Cc][Oo][Nn]|[Pp][Rr][Nn]|[Aa][Uu][Xx]|[Nn][Uu][Ll]|[Cc][Oo][Mm][1-9]"
    "|[Ll][Pp][Tt][1-9])(?:\\.|$))(?!.*\\.\\.)"
    "[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,98}[A-Za-z0-9_-])?$"
)
#: Extra JSON schema for request fields that name a new folder.
NAME_SCHEMA = {"pattern": NAME_PATTERN, "minLength": 1, "maxLength": 100}


def check_new_name(value: str, *, field: str = "name") -> str:
    """Return ``value`` if it may name a new folder; else raise a 400 naming ``field``."""
    name = value or ""
    if not name.strip():
        raise ApiError(400, f"{field} must not be empty", field=field)
    if (
        "/" in name
        or "\\" in name
        or ".." in name
        or not _ALLOWED.match(name)
        or _RESERVED.match(name)
    ):
        raise ApiError(400, f"{field} {name!r} is not allowed: {NAME_RULE}", field=field)
    return name
