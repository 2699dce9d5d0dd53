"""A deadline for the reads of one thread, which readers that can stop early honour.

The web server reads images for requests in threads of their own and gives each read a
deadline (``limits.read_seconds``). :func:`read_deadline` sets it for the current thread;
readers whose library can abandon work halfway (Zarr runs reads as cancellable tasks on its
own event loop) ask :func:`time_left` and give up with a VolumeError naming the file when it
runs out, instead of leaving the library's shared loop busy with a read nobody waits for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = ["read_deadline", "time_left"]

_local = threading.local()


@contextlib.contextmanager
def read_deadline(seconds: float) -> Iterator[None]:
    """Reads in this block of this thread should finish within ``seconds``."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = time.monotonic() + float(seconds)
    try:
        yield
    finally:
        _local.deadline = previous


def time_left() -> float | None:
    """Seconds left before this thread's read deadline; None when it has none."""
    deadline = getattr(_local, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()
