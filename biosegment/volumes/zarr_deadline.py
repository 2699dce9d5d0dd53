"""Zarr reads that end at the read deadline of the thread that asked for them.

zarr-python runs every read as a task on one event loop thread shared by the whole process.
A store whose header claims far more chunks than it holds can keep that task busy for hours
without ever yielding (the chunk list is built in one go), and then every other Zarr read of
the process waits behind it. :class:`DeadlineArray` runs a read as such a task and, when the
thread's deadline (:mod:`biosegment.volumes.deadline`) passes, cancels it. A task that does not
yield cannot see its cancellation, and one queued behind a stuck read starts only once that
read has been stopped, after it was cancelled. So the caller keeps watching until the task has
really ended: whenever the loop's thread is provably inside this very read (its frame holds the
read's own token), an exception is raised there, so the loop itself and other reads carry on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import sys
import threading
import time
from pathlib import Path

from biosegment.errors import VolumeError
from biosegment.volumes.deadline import time_left

__all__ = ["DeadlineArray", "ZarrReadStopped"]

# how often the caller looks whether a read it gave up on is still being worked on
_WATCH_S = 0.02
# how long it watches at most: a read stuck inside C code cannot be stopped from outside
_WATCH_LIMIT_S = 60.0


class ZarrReadStopped(BaseException):
    """Raised inside Zarr's loop thread to end a read whose caller stopped waiting.

    A BaseException so that ``except Exception`` clauses inside Zarr do not swallow it.
    """


class _Read:
    """One read on Zarr's loop, with a token its frame holds and an event set when it ends."""

    def __init__(self, async_array, selection):
        self.token = object()
        self.ended = threading.Event()
        self.cancelled = False
        self._async_array = async_array
        self._selection = selection
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _guarded(self, token):
        return await self._async_array.getitem(self._selection)

    def start(self, loop: asyncio.AbstractEventLoop) -> concurrent.futures.Future:
        self._loop = loop
        result: concurrent.futures.Future = concurrent.futures.Future()

        def create() -> None:  # on the loop's thread
            if self.cancelled:
                self.ended.set()
                result.cancel()
                return
            self._task = loop.create_task(self._guarded(self.token))
            self._task.add_done_callback(lambda task: self._done(task, result))

        loop.call_soon_threadsafe(create)
        return result

    def _done(self, task: asyncio.Task, result: concurrent.futures.Future) -> None:
        self.ended.set()
        if task.cancelled():
            result.cancel()
        elif (error := task.exception()) is not None:  # retrieved even when nobody waits
            result.set_exception(error)
        else:
            result.set_result(task.result())

    def cancel(self) -> None:
        self.cancelled = True
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._cancel_task)

    def _cancel_task(self) -> None:  # on the loop's thread
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        """Cancel the read and stop it wherever it runs, until it has ended (bounded)."""
        self.cancel()
        limit = time.monotonic() + _WATCH_LIMIT_S
        while not self.ended.wait(_WATCH_S) and time.monotonic() < limit:
            self._interrupt_if_running()

    def _interrupt_if_running(self) -> None:
        from zarr.core import sync

        thread = sync.iothread[0]
        if thread is None or thread.ident is None:
            return
        frame = sys._current_frames().get(thread.ident)
        while frame is not None:
            if frame.f_code is _Read._guarded.__code__ and frame.f_locals.get("token") is (
                self.token
            ):
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread.ident), ctypes.py_object(ZarrReadStopped)
                )
                return
            frame = frame.f_back


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

        read = _Read(async_array, selection)
        future = read.start(_get_loop())
        try:
            return future.result(timeout=max(left, 0.001))
        except concurrent.futures.TimeoutError:
            self._end(read)
            raise VolumeError(
                "reading took longer than the deadline (limits.read_seconds); the store may "
                "be damaged or claim far more data than it holds",
                source=self._path,
            ) from None
        except BaseException:
            # the waiting thread itself was stopped (its request gave up): end the task too
            self._end(read)
            raise

    @staticmethod
    def _end(read: _Read) -> None:
        # This thread may itself be told to stop (its request gave up) while it ends the
        # task; such a signal comes once, so doing the work again is enough.
        while True:
            try:
                read.stop()
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # noqa: S112 - the stop signal of the waiting thread
                continue
