"""The trained-N sweep's table: top-1 against trained N, with parameters, FLOPs and latency per image.

    python -m bench.trained_n_sweep                       # every sweep under checkpoints/
    python -m bench.trained_n_sweep --rounds 50 --threads 1

Top-1 is read from each checkpoint's ``metrics.json`` at its own N (written by ``python -m vitrm
evaluate``); FLOPs are counted by torch (``vitrm.flops_per_image``); latency is measured here: one
image at a time, the models interleaved round after round so that background load slows them
alike, median per model. Prints a markdown table (docs/results.md, checkpoints/EXPERIMENTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import vitrm

ROOT = Path(__file__).resolve().parents[1]


def latencies(points: list[vitrm.SweepPoint], rounds: int) -> dict[int, float]:
    models = {p.trained_steps: vitrm.load(p.path) for p in points}
    image = torch.randn(1, 3, 32, 32)
    times: dict[int, list[float]] = {n: [] for n in models}
    with torch.inference_mode():
        for model in models.values():
            model(image)                                   # warm-up
        for _ in range(rounds):
            for n, model in models.items():
                start = time.perf_counter()
                model(image)
                times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(ROOT / "checkpoints"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sweeps = vitrm.find_sweeps(sorted(p for p in Path(args.root).iterdir() if p.is_dir()))
    if not sweeps:
        sys.exit(f"no trained-N sweep under {args.root}")
    print(f"torch {torch.__version__}, {args.threads} thread(s); latency: median of {args.rounds} interleaved "
          "single-image forward passes at the trained N")
    for points in sweeps:
        lat = latencies(points, args.rounds)
        base = points[0]
        print(f"\n{base.path.parent.name}/: test data {base.data or '?'} ({base.num_images or '?'} images)\n")
        print("| checkpoint | trained N | parameters | MFLOPs / image | latency / image | test top-1 at N |")
        print("|---|---|---|---|---|---|")
        for p in points:
            top1 = "not evaluated" if p.top1 is None else f"{100 * p.top1:.2f}%"
            print(f"| {p.path.name} | {p.trained_steps} | {p.parameters:,} | {p.flops_per_image / 1e6:.1f} "
                  f"| {1000 * lat[p.trained_steps]:.2f} ms | {top1} |")


if __name__ == "__main__":
    main()
