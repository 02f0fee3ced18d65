"""Latency of each captum method on one image, measured side by side in one run on CPU.

    .venv/bin/python -m bench.attribution_latency            # about 90 s on 2 cores
    .venv/bin/python -m bench.attribution_latency --quick    # steps 1 and N, 2 repeats: about 15 s

What is timed is ``vitrm.attribution.attribute(model, image, steps, method)``, the call the app
makes when "Compute attributions" is pressed: a forward pass that picks the class predicted at
that step, then the captum call. The image is the first test image of CIFAR-10 (JPEG q75 copy)
when ../shared holds it (else a random one); the model is the flagship's (bench/common.py).

1. Every method (vitrm.attribution.METHODS) with the model run to its trained step count N,
   next to one plain forward pass at N steps: median ms, the images the call pushes through
   the model (counted with a forward hook), and ratios to the forward pass and to Saliency.
2. Every method across steps 1, 2, N, 2N and 4N (the app's slider range): the cost of a
   method grows with the steps it runs the model to, because it back-propagates through all
   of them.

Methods and a forward pass are timed interleaved (one call of each, repeat after repeat) and
each median is reported, so a background load drifting over the run shifts all of them alike.
The one-off cost of ``import captum.attr`` (paid at the first attribution in a process; the app
defers it to then) is printed first.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from bench.common import describe_model, environment, load_model, side_by_side, table, test_images
from vitrm.analysis import normalize
from vitrm.attribution import METHODS, attribute

ROOT = Path(__file__).resolve().parents[1]


def evaluated_images(model, image: torch.Tensor, steps: int, method: str) -> int:
    """How many images one attribution call runs through the model (forward passes x batch)."""
    seen = []
    handle = model.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    try:
        attribute(model, image, steps, method)
    finally:
        handle.remove()
    return sum(seen)


def calls(model, image: torch.Tensor, steps: int) -> dict:
    def forward():
        with torch.no_grad():
            model(image, steps)
    fns = {"forward": forward}
    for method in METHODS:
        fns[method] = lambda m=method: attribute(model, image, steps, m)
    return fns


def at_trained_steps(model, image: torch.Tensor, repeats: int) -> None:
    N = model.config.trained_steps
    ms = side_by_side(calls(model, image, N), repeats)
    rows = [{"call": "forward pass, no gradient", "images through the model": 1, "median ms": f"{ms['forward']:.1f}",
             "x forward": "1.0x", "x Saliency": f"{ms['forward'] / ms['saliency']:.2f}x"}]
    for method, name in METHODS.items():
        rows.append({"call": name, "images through the model": evaluated_images(model, image, N, method),
                     "median ms": f"{ms[method]:.1f}", "x forward": f"{ms[method] / ms['forward']:.1f}x",
                     "x Saliency": f"{ms[method] / ms['saliency']:.1f}x"})
    table(f"1. one image, model run to its trained {N} steps: median of {repeats} interleaved calls", rows,
          "Images through the model include the forward pass that picks the predicted class. Gradient methods\n"
          "also run a backward pass per batch; Occlusion runs forward only.")


def across_steps(model, image: torch.Tensor, step_counts: list[int], repeats: int) -> None:
    ms = {s: side_by_side(calls(model, image, s), repeats) for s in step_counts}
    rows = []
    for key in ["forward"] + list(METHODS):
        row = {"call": METHODS.get(key, "forward pass")}
        for s in step_counts:
            row[f"{s} steps ms"] = f"{ms[s][key]:.1f}"
        first, last = step_counts[0], step_counts[-1]
        row[f"{last} / {first} steps"] = f"{ms[last][key] / ms[first][key]:.1f}x"
        rows.append(row)
    table(f"2. across steps (one image, median of {repeats} interleaved calls per step count)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="steps 1 and N only, 2 repeats: a check in seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared 2-core box)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per method and step count (default 9, --quick 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    start = time.perf_counter()
    import captum.attr  # noqa: F401
    import_ms = (time.perf_counter() - start) * 1e3

    model, source = load_model()
    cfg = model.config
    pixels, where = test_images(1, cfg)
    image = normalize(pixels, cfg.mean, cfg.std)
    repeats = args.repeats or (2 if args.quick else 9)
    N = cfg.trained_steps if cfg.recursive else 1
    step_counts = [1, N] if args.quick else sorted({1, 2, N, 2 * N, 4 * N})

    print(f"# attribution latency benchmark{' (--quick)' if args.quick else ''}")
    print(f"{environment()} at start")
    print(describe_model(model, source))
    print(f"image: the first of {where}")
    print(f"import captum.attr (once per process, at the first attribution): {import_ms:.0f} ms")
    start = time.perf_counter()
    at_trained_steps(model, image, repeats)
    across_steps(model, image, step_counts, repeats)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
