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
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from biosegment.engine._fast_forward import FastUNet
from biosegment.engine.unet import UNet

__all__ = ["WindowRunner"]

# More workers than this would multiply activation memory for little gain; the rest of the
# threads go to intra-op parallelism inside each worker.
_MAX_WORKERS = 4


class WindowRunner:
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
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="biosegment-windows",
                                            initializer=torch.set_num_threads,
                                            initargs=(max(1, self._threads // workers),))
            self._in_flight = 2 * workers

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        """Float32 logits on the CPU, ``(B, classes, wz, wy, wx)``, for windows ``(B, wz, wy, wx)``."""
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            x = x[:, None, 0] if self._dims == 2 else x[:, None]
            logits = self.network(x)
            if self._dims == 2:
                logits = logits[:, :, None]
            return logits.to("cpu")

    def map(self, batches: Iterable[np.ndarray]) -> Iterator[torch.Tensor]:
        """Logits of each batch, in order. Closing the iterator early (an error, a cancel)
        drops batches not yet started and waits for the running ones."""
        if self._pool is None:
            for batch in batches:
                yield self.logits(batch)
            return
        pending: deque[Future] = deque()
        source = iter(batches)
        try:
            for batch in source:
                pending.append(self._pool.submit(self.logits, batch))
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

    def __enter__(self) -> WindowRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
