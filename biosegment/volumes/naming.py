"""Which files in a slice folder are image slices, and in which order.

Slice folders are ordered the way people number files: ``z2.png`` comes before ``z10.png``.
Hidden files, editor backups and the temporary names that copy tools and our own writers use
while a file is incomplete are never slices.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.paths import is_temporary_name

__all__ = [
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "PNG_SUFFIXES",
    "natural_sort_key",
    "list_image_files",
    "is_image_file",
]

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
PNG_SUFFIXES = frozenset({".png"})
#: Lower-case suffixes that count as image files; matching ignores case (``.TIF`` counts).
IMAGE_SUFFIXES = TIFF_SUFFIXES | PNG_SUFFIXES

_DIGIT_RUNS = re.compile(r"(\d+)")


def natural_sort_key(name: str) -> tuple:
    """Key that orders runs of digits by value, so ``z2`` sorts before ``z10``.

    The stem is compared before the suffix (``z.png`` before ``z1.png``). ``re.split`` with a
    capturing group alternates text and digits, so text and numbers always meet their own kind
    when two keys are compared. Ties (``z01``/``z1``, ``A``/``a``) fall back to the names.
    """
    stem, suffix = os.path.splitext(name)
    pieces = _DIGIT_RUNS.split(stem.casefold())
    numbered = tuple(int(p) if i % 2 else p for i, p in enumerate(pieces))
    return numbered, suffix.casefold(), name.casefold(), name


def is_image_file(name: str) -> bool:
    """True for a finished (not temporary) file whose suffix is in :data:`IMAGE_SUFFIXES`."""
    return not is_temporary_name(name) and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, naturally sorted; reads the listing only.

    Raises :class:`VolumeError` naming the folder when it is missing or not a folder.
    """
    folder = Path(folder)
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if is_image_file(e.name) and e.is_file()]
    except FileNotFoundError:
        raise VolumeError("folder not found", source=folder) from None
    except NotADirectoryError:
        raise VolumeError("not a folder", source=folder) from None
    except OSError as exc:
        raise VolumeError(f"cannot list folder: {exc.strerror or exc}", source=folder) from None
    return [folder / n for n in sorted(names, key=natural_sort_key)]
