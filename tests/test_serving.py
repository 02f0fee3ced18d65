"""vitrm.TraceBatcher: many threads' single-image traces, served in batches, each as if traced alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from vitrm import CNNConfig, CompactCNN, TraceBatcher, ViTRM, ViTRMConfig

CONCAT = ViTRMConfig(dim=32, heads=2, layers=1, trained_steps=2, latent_updates=2, combine="concat",
                     tokenizer="conv", patch_size=8)
ADD = ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1, conv_stages=1)


def images(count: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, 32, 32, generator=generator) for _ in range(count)]


def close(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or (a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4))


def same_trace(a, b) -> bool:
    fields = ("logits", "probs", "halt", "y", "z", "y_init", "z_init")
    maps = (a.attention is None and b.attention is None) or (
        close(a.attention.latent, b.attention.latent) and close(a.attention.answer, b.attention.answer))
    return all(close(getattr(a, f), getattr(b, f)) for f in fields) and maps


class Gated(torch.nn.Module):
    """A model whose first trace waits for ``release``: requests sent meanwhile queue up behind it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.started, self.release, self.batch_sizes = model, threading.Event(), threading.Event(), []

    def trace(self, images, steps=None, attention=True):
        self.batch_sizes.append(images.shape[0])
        self.started.set()
        assert self.release.wait(30)
        return self.model.trace(images, steps=steps, attention=attention)


@pytest.mark.parametrize("model", [ViTRM(CONCAT), ViTRM(ADD), CompactCNN(CNNConfig(cnn_widths=(8, 16)))],
                         ids=["vitrm-concat", "vitrm-add-conv-stage", "cnn"])
def test_every_thread_gets_its_own_images_trace_as_if_traced_alone(model):
    torch.manual_seed(0)
    model.eval()
    steps = 3 if isinstance(model, ViTRM) else None
    batcher = TraceBatcher()
    inputs = images(12)
    with ThreadPoolExecutor(12) as pool:
        served = list(pool.map(lambda x: batcher.trace(model, x, steps=steps), inputs))
    for x, trace in zip(inputs, served):
        alone = model.trace(x, steps=steps)
        assert trace.probs.shape[1] == 1 and same_trace(trace, alone)
    assert batcher.images == 12


def test_requests_that_arrive_while_a_batch_runs_go_together_in_the_next():
    gated = Gated(ViTRM(CONCAT).eval())
    batcher = TraceBatcher()
    inputs = images(7)
    with ThreadPoolExecutor(7) as pool:
        first = pool.submit(batcher.trace, gated, inputs[0], 2)
        assert gated.started.wait(30)
        rest = [pool.submit(batcher.trace, gated, x, 2) for x in inputs[1:]]
        while len(batcher._pending) < 6:          # all six queued behind the running batch
            threading.Event().wait(0.01)
        gated.release.set()
        traces = [first.result(30)] + [f.result(30) for f in rest]
    assert gated.batch_sizes == [1, 6] and (batcher.batches, batcher.images) == (2, 7)
    for x, trace in zip(inputs, traces):
        assert same_trace(trace, gated.model.trace(x, steps=2))


def test_requests_for_other_step_counts_or_models_are_never_mixed_into_one_batch():
    model, other = ViTRM(CONCAT).eval(), ViTRM(ADD).eval()
    gated = Gated(model)
    batcher = TraceBatcher()
    x = images(4)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.trace, gated, x[0], 2)
        assert gated.started.wait(30)
        longer = pool.submit(batcher.trace, gated, x[1], 5)
        elsewhere = pool.submit(batcher.trace, other, x[2], 2)
        no_maps = pool.submit(batcher.trace, gated, x[3], 2, False)
        while len(batcher._pending) < 3:
            threading.Event().wait(0.01)
        gated.release.set()
        assert first.result(30).steps == 2 and longer.result(30).steps == 5
        assert same_trace(elsewhere.result(30), other.trace(x[2], steps=2))
        assert no_maps.result(30).attention is None
    assert gated.batch_sizes == [1, 1, 1]


def test_a_failing_trace_reaches_its_requesters_and_the_worker_serves_on():
    model = ViTRM(CONCAT).eval()
    batcher = TraceBatcher()
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        batcher.trace(model, images(1)[0], steps=0)
    with pytest.raises(ValueError, match=r"one image at a time, as \[1, C, H, W\]"):
        batcher.trace(model, torch.zeros(2, 3, 32, 32), steps=2)
    assert batcher.trace(model, images(1)[0], steps=2).steps == 2


def test_a_batch_is_capped_at_max_batch():
    gated = Gated(ViTRM(CONCAT).eval())
    batcher = TraceBatcher(max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher.trace, gated, images(1)[0], 2)
        assert gated.started.wait(30)
        rest = [pool.submit(batcher.trace, gated, x, 2) for x in images(7, seed=1)]
        while len(batcher._pending) < 7:
            threading.Event().wait(0.01)
        gated.release.set()
        [f.result(30) for f in [first, *rest]]
    assert gated.batch_sizes == [1, 3, 3, 1]
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        TraceBatcher(max_batch=0)


LONG = ViTRMConfig(dim=16, heads=2, layers=8, latent_updates=3, trained_steps=64)   # 8,192 layer calls at 4N


class GatedLong(Gated):
    """A model whose config asks for more work than the quick lane takes, and whose trace waits for release."""

    def __init__(self) -> None:
        super().__init__(ViTRM(ViTRMConfig(dim=16, heads=2, layers=1, trained_steps=2)).eval())
        self.config = LONG


def test_a_long_trace_does_not_hold_up_another_sessions_quick_one():
    from vitrm.config import estimate_work
    from vitrm.serving import QUICK_LAYER_CALLS
    assert estimate_work(LONG, 2 * LONG.trained_steps)[0] > QUICK_LAYER_CALLS
    quick = ViTRM(CONCAT).eval()
    for lanes, served_meanwhile in ((2, True), (1, False)):
        long, batcher = GatedLong(), TraceBatcher(lanes=lanes)
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(batcher.trace, long, images(1)[0], 2 * LONG.trained_steps)
            assert long.started.wait(30)
            page = pool.submit(batcher.trace, quick, images(1, seed=1)[0], 2)
            try:
                page.result(timeout=10)
                served = True
            except TimeoutError:
                served = False
            long.release.set()
            assert held.result(30) is not None and page.result(30).steps == 2
        assert served == served_meanwhile, f"lanes={lanes}"
