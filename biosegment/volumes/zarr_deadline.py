"""Zarr reads that end at the read deadline of the thread that asked for them.

zarr-python runs every read as a task on one event loop thread shared by the whole process.
A store whose header claims far more chunks than it holds can keep that task busy for hours
without ever yielding (the chunk list is built in one go), and then every other Zarr read of
the process waits behind it. :class:`DeadlineArray` runs a read as such a task and, when the
thread's deadline (:mod:`biosegment.volumes.deadline`) passes, cancels it; if the task is
still stuck in code that does not yield, an exception is raised inside the loop's thread,
only when that thread is provably inside this very read (its frame holds the read's own
selection object), so the loop itself and other reads carry on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import sys
import time
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.volumes.deadline import time_left

__all__ = ["DeadlineArray", "ZarrReadStopped"]

# how long a cancelled task may take to notice before it is stopped from outside
_CANCEL_GRACE_S = 0.05


class ZarrReadStopped(Exception):
    """Raised inside Zarr's loop thread to end a read whose caller stopped waiting."""


class DeadlineArray:
    """A Zarr array whose reads give up (and end their task) at the thread's read deadline.

    Without a deadline it reads like the array.
    """

    def __init__(self, array, path: Path):
        self._array = array
        self._path = path

    def __getattr__(self, name):
        return getattr(self._array, name)

    def __getitem__(self, selection):
        left = time_left()
        async_array = getattr(self._array, "_async_array", None)
        if left is None or async_array is None:
            return self._array[selection]
        from zarr.core.sync import _get_loop

        future = asyncio.run_coroutine_threadsafe(async_array.getitem(selection), _get_loop())
        try:
            return future.result(timeout=max(left, 0.001))
        except concurrent.futures.TimeoutError:
            self._end(future, selection)
            raise VolumeError(
                "reading took longer than the deadline (limits.read_seconds); the store may "
                "be damaged or claim far more data than it holds",
                source=self._path,
            ) from None
        except BaseException:
            # the waiting thread itself was stopped (its request gave up): end the task too
            self._end(future, selection)
            raise

    @staticmethod
    def _end(future: concurrent.futures.Future, selection) -> None:
        # This thread may itself be told to stop (its request gave up) while it ends the
        # task; such a signal comes once, so doing the work again is enough.
        while True:
            try:
                future.cancel()
                _stop_if_stuck(future, selection)
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # noqa: S112 - the stop signal of the waiting thread
                continue


def _stop_if_stuck(future: concurrent.futures.Future, selection) -> None:
    # The future says "cancelled" at once, while the task on the loop may run on: only the
    # loop thread's stack tells whether this read is still being worked on.
    time.sleep(_CANCEL_GRACE_S)
    from zarr.core import sync

    thread = sync.iothread[0]
    if thread is None or thread.ident is None:
        return
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "getitem" and frame.f_locals.get("selection") is selection:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(ZarrReadStopped)
            )
            return
        frame = frame.f_back
