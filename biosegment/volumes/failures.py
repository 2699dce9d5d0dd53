"""Turn what goes wrong while reading an image file into a VolumeError that names the file.

Third-party decoders fail in many ways: tifffile raises its own errors, ``ValueError`` or
``struct.error``, and reports some corruption only through its logger (a broken page chain is
logged and the chain silently cut short); Pillow raises ``OSError`` or ``SyntaxError``. Readers
wrap their I/O in :func:`volume_errors` so that callers only ever see
:class:`biosegment.errors.VolumeError`, and check pixel types with :func:`checked_dtype`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from biosegment.errors import BioSegmentError, VolumeError
from biosegment.volumes.base import SUPPORTED_DTYPES

__all__ = [
    "volume_errors",
    "checked_dtype",
    "checked_file_size",
    "multichannel_error",
    "MULTICHANNEL_REASON",
]

MULTICHANNEL_REASON = (
    "has {detail}; multichannel (RGB or several channels) images are not "
    "supported yet: save one greyscale channel per volume"
)


class _TifffileComplaints(logging.Handler):
    """Collects tifffile's ERROR log records for the threads that are currently listening."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._local = threading.local()

    @contextlib.contextmanager
    def listen(self) -> Iterator[list[str]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        heard: list[str] = []
        stack.append(heard)
        try:
            yield heard
        finally:
            stack.pop()

    def emit(self, record: logging.LogRecord) -> None:
        stack = getattr(self._local, "stack", None)
        if stack:
            stack[-1].append(record.getMessage())


_complaints = _TifffileComplaints()
logging.getLogger("tifffile").addHandler(_complaints)


@contextlib.contextmanager
def volume_errors(
    source: Path, action: str, *, where: str | None = None, complaints_are_errors: bool = True
) -> Iterator[list[str]]:
    """Re-raise any failure inside the block as a VolumeError naming ``source``.

    ``action`` says what was being done ("reading the TIFF header"), ``where`` which part
    ("slice 12"). Errors tifffile only logs count as failures unless ``complaints_are_errors``
    is false; the list of them is yielded so callers can inspect it either way.
    """
    with _complaints.listen() as heard:
        try:
            yield heard
        except (BioSegmentError, MemoryError, KeyboardInterrupt):
            raise
        except FileNotFoundError:
            raise VolumeError("file not found", source=source, where=where) from None
        except Exception as exc:  # decoders raise anything from ValueError to struct.error
            detail = str(exc).strip() or type(exc).__name__
            raise VolumeError(f"{action} failed: {detail}", source=source, where=where) from exc
    if heard and complaints_are_errors:
        detail = _strip_object_repr(heard[0])
        raise VolumeError(
            f"{action} failed: corrupt or truncated file ({detail})", source=source, where=where
        )


def _strip_object_repr(message: str) -> str:
    """tifffile prefixes messages with ``<tifffile.TiffPages @8> ``; people need only the rest."""
    if message.startswith("<") and "> " in message:
        return message.split("> ", 1)[1]
    return message


def checked_dtype(
    dtype: np.dtype | None,
    source: Path,
    *,
    where: str | None = None,
    described_as: str | None = None,
) -> np.dtype:
    """Return ``dtype`` in native byte order if BioSegment reads it, else raise VolumeError."""
    if dtype is not None:
        native = np.dtype(dtype).newbyteorder("=")
        if native in SUPPORTED_DTYPES:
            return native
    name = described_as or (str(np.dtype(dtype)) if dtype is not None else "unknown")
    raise VolumeError(
        f"pixel type {name} is not supported; use uint8, uint16 or float32",
        source=source,
        where=where,
    )


def multichannel_error(source: Path, detail: str, *, where: str | None = None) -> VolumeError:
    """The error for RGB and multi-channel images, which BioSegment does not read yet."""
    return VolumeError(MULTICHANNEL_REASON.format(detail=detail), source=source, where=where)


def checked_file_size(path: Path) -> int:
    """Size of ``path`` in bytes; VolumeError if it is missing, unreadable or empty."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise VolumeError("file not found", source=path) from None
    except OSError as exc:
        raise VolumeError(f"cannot read file: {exc.strerror or exc}", source=path) from None
    if size == 0:
        raise VolumeError("empty file (0 bytes); is it still being copied?", source=path)
    return size
