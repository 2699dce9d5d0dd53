"""Bounded, thread-safe caches for what the viewer asks for again and again.

Panning and zooming request the same slice many times as tiles; decoding it once and cutting
tiles from memory is what keeps a tile under a few milliseconds. :class:`ByteBudgetCache` keeps
the most recently used values until their total size passes a byte budget; :class:`ReaderCache`
keeps volume readers open (a memory-mapped TIFF costs nothing to keep) and closes the ones it
drops. Keys carry a fingerprint of the files, so a rewritten file is never served from memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

__all__ = ["ByteBudgetCache", "ReaderCache"]


class ByteBudgetCache:
    """Least-recently-used arrays up to ``budget_bytes`` in total."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        # Computed outside the lock: two threads may both decode a slice once, which is cheaper
        # than making every tile wait for one decode.
        value = compute()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._used += value.nbytes
                while self._used > self.budget_bytes and len(self._items) > 1:
                    _, dropped = self._items.popitem(last=False)
                    self._used -= dropped.nbytes
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used = 0

    @property
    def used_bytes(self) -> int:
        return self._used


class ReaderCache:
    """Up to ``capacity`` open readers with whatever facts were computed about them."""

    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._opening: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get_or_open(self, key: Hashable, open_: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            opening = self._opening.setdefault(key, threading.Lock())
        # One opener per key, and none under the cache's lock: a volume that is slow to open
        # (a network drive, a damaged file) must not hold up readers of every other volume.
        with opening:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = open_()
            except BaseException:
                with self._lock:
                    self._opening.pop(key, None)
                raise
            with self._lock:
                self._opening.pop(key, None)
                self._items[key] = value
                while len(self._items) > self.capacity:
                    _, dropped = self._items.popitem(last=False)
                    _close_quietly(dropped)
            return value

    def close(self) -> None:
        with self._lock:
            for value in self._items.values():
                _close_quietly(value)
            self._items.clear()


def _close_quietly(value: Any) -> None:
    close = getattr(value, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # a reader that fails to close must not break the viewer
            pass
