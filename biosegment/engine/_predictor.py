"""Run batches of windows through the network, keeping every CPU core busy.

On a CPU, a U-Net's small convolutions and norms split across cores by PyTorch's intra-op
threads synchronise after every layer; when other programs share the cores, each of those
waits stalls the whole pass (measured 4-7x slower on a loaded 2-core machine). So the CPU
path gives each core its own window instead: a few worker threads, each running whole
forward passes with its share of the intra-op threads. Results come back in order. A GPU
runs batches one after another from the calling thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Self, TypeVar

import numpy as np
import torch

from biosegment.engine._block_memory import NETWORK_PASSES
from biosegment.engine._fast_forward import FastUNet
from biosegment.engine.unet import UNet

__all__ = ["WindowPredictor"]

T = TypeVar("T")
R = TypeVar("R")

# More workers than this would multiply activation memory for little gain; the rest of the
# threads go to intra-op parallelism inside each worker.
_MAX_WORKERS = NETWORK_PASSES


class WindowPredictor:
    """The prepared network and the threads that run it; use as a context manager.

    :param model: the network; its weights are copied once.
    :param device: where to run.
    :param precision: ``fp32`` or ``bf16``.
    """

    def __init__(self, model: UNet, device: torch.device, precision: str):
        self.device = torch.device(device)
        self.precision = precision
        self.network = FastUNet(model, self.device, precision)
        self._dims = model.config["dims"]
        self._threads = torch.get_num_threads()
        self._pool: ThreadPoolExecutor | None = None
        if self.device.type == "cpu" and self._threads > 1:
            workers = min(self._threads, _MAX_WORKERS)
            # torch.set_num_threads in a worker only changes that thread's OpenMP team size
            # (plus the default for threads started later, restored in close()).
            self._pool = ThreadPoolExecutor(
                workers,
                thread_name_prefix="biosegment-windows",
                initializer=torch.set_num_threads,
                initargs=(max(1, self._threads // workers),),
            )
            self._in_flight = 2 * workers
            # The calling thread only gathers results now; its own OpenMP team would just
            # compete with the workers and wait on barriers.
            torch.set_num_threads(1)

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        """Float32 logits on the CPU, ``(B, classes, wz, wy, wx)``, for windows ``(B, wz, wy, wx)``."""
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            x = x[:, None, 0] if self._dims == 2 else x[:, None]
            logits = self.network(x)
            if self._dims == 2:
                logits = logits[:, :, None]
            return logits.to("cpu")

    def _task(self, item, prepare, finish):
        with torch.inference_mode():
            return finish(self.logits(prepare(item)), item)

    def map(
        self,
        items: Iterable[T],
        prepare: Callable[[T], np.ndarray],
        finish: Callable[[torch.Tensor, T], R],
    ) -> Iterator[R]:
        """``finish(logits of prepare(item), item)`` for each item, in order.

        ``prepare`` (cut the windows of a batch) and ``finish`` (turn logits into what the
        caller keeps) run in the worker threads too, so all per-window work is parallel.
        Closing the iterator early (an error, a cancel) drops batches not yet started and
        waits for the running ones.
        """
        if self._pool is None:
            for item in items:
                yield self._task(item, prepare, finish)
            return
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(self._pool.submit(self._task, item, prepare, finish))
                if len(pending) >= self._in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    future.exception()  # wait; its result is not wanted

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            torch.set_num_threads(self._threads)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
