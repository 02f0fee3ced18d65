"""Single-image traces for many threads at once, run in batches by one worker thread.

    batcher = vitrm.TraceBatcher()
    trace = batcher.trace(model, image_batch_of_one, steps=8)     # from any thread; blocks until done

Why: a server that traces one image per visitor runs each trace as a few hundred small torch
operations, and torch lets go of Python's GIL around every one of them. With twenty sessions at
once on the 2-core machine each of those hand-offs waits for the GIL (futex calls were most of the
server's system time), and a trace took three times as long as alone. Here, requests that arrive
while a batch runs wait for the next one and go together: the same operations serve the whole
batch (ten images of the flagship in 79 ms against 207 ms one by one), and a request that finds
the worker idle is run at once, as a batch of one.

Batching changes nothing an image gets but rounding: every operation of the models is per image
(the batch norm of the convolution stage uses its running statistics), so an image's trace in a
batch equals its trace alone up to float summation order (probabilities within about 1e-6,
tests/test_serving.py).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from .model import Trace

MAX_BATCH = 16        # the most images in one batched trace: a bound on its memory and on the first one's wait


@dataclass
class _Request:
    model: torch.nn.Module
    image: torch.Tensor                # [1, C, H, W], normalized
    steps: int | None
    attention: bool
    done: Future = field(default_factory=Future)

    def joins(self, other: _Request) -> bool:
        """Whether the two can share one batched trace."""
        return (self.model is other.model and self.steps == other.steps and self.attention == other.attention
                and self.image.shape == other.image.shape and self.image.dtype == other.image.dtype)


class TraceBatcher:
    """One worker thread, started on the first request, serving ``model.trace`` for batches of one."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self._pending: deque[_Request] = deque()
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None
        self.batches = 0               # batched traces run so far, and the images in them (for benchmarks)
        self.images = 0

    def trace(self, model: torch.nn.Module, image: torch.Tensor, steps: int | None = None,
              attention: bool = True) -> Trace:
        """``model.trace(image, steps, attention)`` for a batch of one, run with whatever else is waiting.

        Raises what ``model.trace`` raised on the batch (every request in a failed batch gets the error).
        """
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"one image at a time, as [1, C, H, W]; got shape {tuple(image.shape)}")
        request = _Request(model, image, steps, attention)
        with self._ready:
            self._pending.append(request)
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="vitrm-trace-batcher", daemon=True)
                self._worker.start()
            self._ready.notify()
        return request.done.result()

    def _next_batch(self) -> list[_Request]:
        with self._ready:
            while not self._pending:
                self._ready.wait()
            first = self._pending[0]
            batch = [r for r in self._pending if r.joins(first)][:self.max_batch]
            for r in batch:
                self._pending.remove(r)
            return batch

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                first = batch[0]
                images = first.image if len(batch) == 1 else torch.cat([r.image for r in batch])
                out = first.model.trace(images, steps=first.steps, attention=first.attention)
                results = [out] if len(batch) == 1 else [out.select(i) for i in range(len(batch))]
            except BaseException as e:      # the requester gets it; the worker serves on
                for r in batch:
                    r.done.set_exception(e)
                continue
            self.batches += 1
            self.images += len(batch)
            for r, result in zip(batch, results):
                r.done.set_result(result)
