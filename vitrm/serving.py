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

Fair to every visitor: one worker would run a stranger's long trace (a model near the work budget of
``vitrm.config``, seconds to minutes) while every other session's default page waited behind it. So requests
go to one of two lanes by the work they ask for (``vitrm.config.estimate_work`` at their step count): quick
ones (the shipped models' pages, up to about a second alone) to one worker, long ones to another, each
batching as above. A long trace then shares the cores with the quick lane instead of blocking it; long traces
wait only for each other. Measured with ``python -m bench.hostile_inputs --fairness`` (docs/reliability.md).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from .model import Trace

MAX_BATCH = 16        # the most images in one batched trace: a bound on its memory and on the first one's wait
# A trace above either figure goes to the long lane. The shipped models' pages ask for at most 96 layer
# applications and 0.5 GFLOP; at about 0.5 ms a layer application on the 2-core machine, 1,024 of them are
# half a second alone.
QUICK_LAYER_CALLS = 1024
QUICK_FLOPS = 5 * 10**9


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

    def is_long(self) -> bool:
        """Whether the work asked for is over the quick lane's figures (a model without a config is quick)."""
        config = getattr(self.model, "config", None)
        if config is None:
            return False
        from .config import estimate_work
        calls, flops = estimate_work(config, self.steps)
        return calls > QUICK_LAYER_CALLS or flops > QUICK_FLOPS


class _Lane:
    """A queue and the one worker thread, started on its first request, that serves it in batches."""

    def __init__(self, name: str, max_batch: int) -> None:
        self.name, self.max_batch = name, max_batch
        self.pending: deque[_Request] = deque()
        self.ready = threading.Condition()
        self.worker: threading.Thread | None = None
        self.batches = 0
        self.images = 0

    def submit(self, request: _Request) -> None:
        with self.ready:
            self.pending.append(request)
            if self.worker is None:
                self.worker = threading.Thread(target=self._serve, name=f"vitrm-trace-{self.name}", daemon=True)
                self.worker.start()
            self.ready.notify()

    def _next_batch(self) -> list[_Request]:
        with self.ready:
            while not self.pending:
                self.ready.wait()
            first = self.pending[0]
            batch = [r for r in self.pending if r.joins(first)][:self.max_batch]
            for r in batch:
                self.pending.remove(r)
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


class TraceBatcher:
    """Two lanes (quick and long traces), each one worker thread serving ``model.trace`` for batches of one.

    ``lanes=1`` puts every request in one lane, first come first served (how it was before the lanes; kept to
    measure what they are worth)."""

    def __init__(self, max_batch: int = MAX_BATCH, lanes: int = 2) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if lanes not in (1, 2):
            raise ValueError(f"lanes must be 1 or 2, got {lanes}")
        self.max_batch = max_batch
        self._quick = _Lane("quick", max_batch)
        self._long = _Lane("long", max_batch) if lanes == 2 else self._quick

    @property
    def batches(self) -> int:
        """Batched traces run so far (for benchmarks)."""
        return self._quick.batches + (self._long.batches if self._long is not self._quick else 0)

    @property
    def images(self) -> int:
        """Images in them."""
        return self._quick.images + (self._long.images if self._long is not self._quick else 0)

    @property
    def _pending(self) -> list[_Request]:
        lanes = [self._quick] if self._long is self._quick else [self._quick, self._long]
        return [r for lane in lanes for r in list(lane.pending)]

    def trace(self, model: torch.nn.Module, image: torch.Tensor, steps: int | None = None,
              attention: bool = True) -> Trace:
        """``model.trace(image, steps, attention)`` for a batch of one, run with whatever else is waiting in its
        lane.

        Raises what ``model.trace`` raised on the batch (every request in a failed batch gets the error).
        """
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"one image at a time, as [1, C, H, W]; got shape {tuple(image.shape)}")
        request = _Request(model, image, steps, attention)
        (self._long if request.is_long() else self._quick).submit(request)
        return request.done.result()
