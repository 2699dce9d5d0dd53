"""Give the memory that large array work freed back to the system, not to the allocator.

numpy and torch take their arrays from the C library's allocator. On Linux (glibc) every thread
that allocates gets an arena of its own, and pages freed in one arena stay in the process for
that arena alone: after a fine-tune has prepared its slices in the job's thread, hundreds of
MB it no longer uses still count in the process's resident memory, and the web server's
threads predicting a live preview beside it allocate afresh on top. Blocks of a few MB are
kept this way too: each time glibc frees a block it had mapped on its own, it raises its
threshold for doing so to that block's size (up to 32 MB), so a large slice's tiles and
activations end up in the arenas. :func:`release_freed_memory` asks the allocator
to return every free page of every arena (``malloc_trim``); it is called after work that
allocates and frees much (a fine-tune's preparation, a live prediction), and costs a few
milliseconds. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["release_freed_memory"]


def _glibc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        library = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = library.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _glibc_trim()


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the system; True when there were some to return."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))
