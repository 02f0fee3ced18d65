"""Training throughput on CPU of the default ViTRMConfig, side by side in one run.

    python bench/train_throughput.py            # about 1-2 minutes on 2 cores
    python bench/train_throughput.py --quick    # batch 8, one round: a smoke test (seconds)

One training step is what ``vitrm.train`` does per batch: deep-supervision forward over all
N steps, the loss of every step (cross-entropy plus the halting BCE), backward, gradient
clipping and an AdamW step, on random 32x32 images. Compared:

* ViTRM with combine="add" (the default) against combine="concat";
* ViTRM against the ViT baseline of equal effective depth (``vitrm.vit_config_for``).

Steps of the models are interleaved (one step of each, round after round) and each model's
median step time is reported, so a background load that comes and goes slows them alike.
FLOPs of one step (forward plus backward: matmuls, convolutions, attention; not the
optimizer's elementwise work) are counted with ``torch.utils.flop_counter.FlopCounterMode``
and divided by the median step time, against a peak estimated from ``lscpu`` (printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vitrm import ViTRMConfig, build_model, num_parameters, vit_config_for  # noqa: E402
from vitrm.train import TrainConfig, make_optimizer, supervision_loss  # noqa: E402


def candidates() -> dict[str, ViTRMConfig]:
    default = ViTRMConfig()
    return {"ViTRM add (default)": default,
            "ViTRM concat": dataclasses.replace(default, combine="concat"),
            f"ViT, {default.effective_depth} layers": vit_config_for(default)}


class Trainer:
    """One model, its optimizer and a fixed random batch; ``step()`` is one training step."""

    def __init__(self, cfg: ViTRMConfig, batch: int):
        self.cfg, self.train_cfg = cfg, TrainConfig(model=cfg)
        self.model = build_model(cfg).train()
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        self.images = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size)
        self.labels = torch.randint(0, cfg.num_classes, (batch,))
        self.targets = torch.nn.functional.one_hot(self.labels, cfg.num_classes).float()

    def forward_backward(self):
        steps = self.cfg.trained_steps if self.cfg.arch == "vitrm" else None
        logits, halt = self.model(self.images, steps, deep_supervision=True)
        loss, _, _ = supervision_loss(logits, halt, self.targets, self.labels, self.train_cfg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def step(self) -> float:
        t0 = time.perf_counter()
        self.forward_backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train_cfg.grad_clip)
        self.optimizer.step()
        return time.perf_counter() - t0

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.forward_backward()
        return counter.get_total_flops()


# --------------------------------------------------------------------------- peak FLOP/s

def cpu_facts() -> dict:
    facts = {"model": platform.processor() or platform.machine(), "flags": set(), "mhz": None, "vendor": ""}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "Model name":
            facts["model"] = value
        elif key == "Vendor ID":
            facts["vendor"] = value
        elif key == "Flags":
            facts["flags"] = set(value.split())
        elif key == "CPU max MHz":
            facts["mhz"] = float(value)
    if facts["mhz"] is None and Path("/proc/cpuinfo").is_file():
        # Under a hypervisor lscpu often has no max clock; cpuinfo's is the nominal one.
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                facts["mhz"] = float(line.split(":")[1])
                break
    return facts


def fp32_flops_per_cycle(facts: dict) -> tuple[int, str]:
    """Per core, assuming two FMA pipes (true of every recent x86 server core)."""
    flags = facts["flags"]
    if "avx512f" in flags and facts["vendor"] == "AuthenticAMD":
        return 32, "AVX-512 on AMD Zen 4 runs as 2 x 256-bit FMA pipes: 2 pipes x 8 lanes x 2 (FMA) = 32"
    if "avx512f" in flags:
        return 64, "AVX-512 with 2 x 512-bit FMA pipes: 2 x 16 lanes x 2 (FMA) = 64"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA with 2 x 256-bit FMA pipes: 2 x 8 lanes x 2 (FMA) = 32"
    return 8, "no FMA flags: assuming 2 x 128-bit SSE pipes, 2 x 4 lanes = 8"


# --------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="timed steps per model (after one warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="batch 8, 1 round: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds = 8, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    trainers = {name: Trainer(cfg, args.batch) for name, cfg in candidates().items()}
    flops = {name: t.flops() for name, t in trainers.items()}
    for t in trainers.values():
        t.step()                                   # warm-up: allocator, kernels, AdamW state
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, t in trainers.items():
            times[name].append(t.step())

    facts = cpu_facts()
    per_cycle, why = fp32_flops_per_cycle(facts)
    peak = args.threads * (facts["mhz"] or 0) * 1e6 * per_cycle
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"median of {args.rounds} interleaved steps per model")
    print(f"CPU: {facts['model']} ({os.cpu_count()} logical CPUs); "
          f"peak FP32 estimate = {args.threads} threads x {facts['mhz'] or float('nan'):.0f} MHz x {per_cycle} "
          f"FLOP/cycle = {peak / 1e9:.0f} GFLOP/s")
    print(f"  FLOP/cycle: {why}; clock: nominal, no turbo; one thread per physical core.")
    print()
    base = None
    header = f"{'model':24s} {'params':>9s} {'GFLOP/step':>11s} {'s/step':>8s} {'img/s':>8s} {'x default':>10s} " \
             f"{'GFLOP/s':>8s} {'% peak':>7s}"
    print(header)
    print("-" * len(header))
    for name, t in trainers.items():
        seconds = statistics.median(times[name])
        speed = args.batch / seconds
        base = base or speed
        achieved = flops[name] / seconds
        print(f"{name:24s} {num_parameters(t.model):>9,} {flops[name] / 1e9:>11.1f} {seconds:>8.3f} {speed:>8.1f} "
              f"{speed / base:>10.2f} {achieved / 1e9:>8.1f} {100 * achieved / peak if peak else float('nan'):>6.1f}%")
    print()
    names = list(trainers)
    print(f"ratios: add / concat = {_ratio(times, names[1], names[0]):.2f}x the images/s;  "
          f"ViTRM (add) / ViT = {_ratio(times, names[2], names[0]):.2f}x")


def _ratio(times, slower: str, faster: str) -> float:
    return statistics.median(times[slower]) / statistics.median(times[faster])


if __name__ == "__main__":
    main()
