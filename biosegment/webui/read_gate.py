"""Run the image reads of web requests off the server's threads, bounded and with a deadline.

A web server has a handful of threads (waitress: 8). A read that never ends (a decoder
spinning on a file whose header lies) or a burst of reads of huge slices must not take them
all, or every page of every dataset stops answering. :class:`ReadGate` runs each read in a
thread of its own and lets the request wait at most ``read_seconds`` for it; a read still
running then answers 503 naming the dataset while the read finishes (or spins) on its own.
At most ``heavy_reads`` reads run at once across the server (which bounds the memory they
decode into) and at most ``per_dataset`` for one dataset; further requests for it wait
within the same deadline. Once a read of a dataset has run past its deadline, requests for
that dataset are refused at once until the read ends, so a damaged dataset holds the server's
threads for one deadline at most.

A read past its deadline is also stopped: the request's thread raises
:class:`ReadAbandoned` inside the reading thread (CPython's asynchronous exception), which
ends a decoder loop written in Python at its next step, so a spinning chunk indexer gives its
CPU and slot back. A read stuck inside C code stops when it returns to Python; until then it
keeps its slot, which is why the probe refuses absurd headers before anything reads them.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from biosegment.volumes.deadline import read_deadline
from biosegment.webui.errors import ApiError

__all__ = ["ReadGate", "ReadTimeout", "ReadAbandoned"]

T = TypeVar("T")


class ReadTimeout(ApiError):
    """A read for a request did not finish in time (503, with ``Retry-After``)."""

    def __init__(self, message: str):
        super().__init__(503, message, field="dataset")


class ReadAbandoned(BaseException):
    """Raised inside a reading thread whose request stopped waiting for it.

    A BaseException so that readers' ``except Exception`` clauses do not swallow it.
    """


def _stop_thread(thread: threading.Thread) -> None:
    ident = thread.ident
    if ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(ReadAbandoned)
        )


class ReadGate:
    """Bounded, deadline-limited reads; see the module docstring."""

    def __init__(
        self, *, read_seconds: float = 10.0, heavy_reads: int = 4, per_dataset: int | None = None
    ):
        self.read_seconds = float(read_seconds)
        self.heavy_reads = int(heavy_reads)
        # a dataset may use half the slots, so another dataset always finds one free
        self.per_dataset = per_dataset or max(1, self.heavy_reads // 2)
        self._slots = threading.Semaphore(self.heavy_reads)
        self._changed = threading.Condition()
        self._running: Counter[str] = Counter()
        self._overdue: Counter[str] = Counter()

    def run(self, dataset: str, read: Callable[[], T]) -> T:
        """Return ``read()``, computed within the deadline, or raise :class:`ReadTimeout`.

        Requests for a dataset wait (within the deadline) while its reads are all taken; a
        dataset with a read already past its deadline is refused at once, so a damaged one
        never holds the server's threads. Exceptions of ``read`` reach the caller unchanged.
        """
        deadline = time.monotonic() + self.read_seconds
        self._enter(dataset, deadline)
        started = False
        try:
            if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise ReadTimeout(
                    f"the server is busy reading other images; dataset "
                    f"{dataset!r} was not read within {self.read_seconds:g} s"
                )
            outcome: dict = {}
            done = threading.Event()

            def work() -> None:
                try:
                    try:
                        with read_deadline(self.read_seconds):
                            outcome["value"] = read()
                    except ReadAbandoned:
                        raise
                    except BaseException as exc:  # handed to the waiting request
                        outcome["error"] = exc
                except ReadAbandoned:
                    pass  # nobody waits for this read any more
                finally:
                    self._finish(dataset, outcome, done)

            thread = threading.Thread(target=work, name=f"read {dataset}", daemon=True)
            thread.start()
            started = True
            if not done.wait(max(0.0, deadline - time.monotonic())):
                with self._changed:
                    if not done.is_set():
                        outcome["overdue"] = True
                        self._overdue[dataset] += 1
                        self._changed.notify_all()
                _stop_thread(thread)
                raise ReadTimeout(
                    f"reading dataset {dataset!r} took longer than "
                    f"{self.read_seconds:g} s (limits.read_seconds); its files may "
                    "be damaged or claim far more data than they hold"
                )
        finally:
            if not started:
                self._leave(dataset)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _refuse_overdue(self, dataset: str) -> None:
        if self._overdue[dataset]:
            raise ReadTimeout(
                f"dataset {dataset!r} is not answering: {self._overdue[dataset]} "
                f"reads of it ran past {self.read_seconds:g} s "
                "(limits.read_seconds) and have not finished; try again later"
            )

    def _enter(self, dataset: str, deadline: float) -> None:
        with self._changed:
            self._refuse_overdue(dataset)
            while self._running[dataset] >= self.per_dataset:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReadTimeout(
                        f"dataset {dataset!r} is busy: its earlier reads did not "
                        f"finish within {self.read_seconds:g} s"
                    )
                self._changed.wait(left)
                self._refuse_overdue(dataset)
            self._running[dataset] += 1

    def _leave(self, dataset: str, *, overdue: bool = False) -> None:
        with self._changed:
            self._running[dataset] -= 1
            if self._running[dataset] <= 0:
                del self._running[dataset]
            if overdue:
                self._overdue[dataset] -= 1
                if self._overdue[dataset] <= 0:
                    del self._overdue[dataset]
            self._changed.notify_all()

    def _finish(self, dataset: str, outcome: dict, done: threading.Event) -> None:
        # The stop signal may arrive late, even here: it is delivered once, so retrying the
        # release steps is enough to never leak a slot.
        def leave() -> None:
            with self._changed:
                done.set()
                overdue = outcome.get("overdue", False)
            self._leave(dataset, overdue=overdue)

        steps = [self._slots.release, leave]
        while steps:
            try:
                steps[0]()
                steps.pop(0)
            except ReadAbandoned:
                continue

    def busy(self) -> dict[str, int]:
        """Reads running now, by dataset (for tests and diagnostics)."""
        with self._changed:
            return dict(self._running)
