"""Training throughput on CPU of the default ViTRMConfig, side by side in one run.

    python -m bench.train_throughput            # about 1-2 minutes on 2 cores
    python -m bench.train_throughput --quick    # batch 8, one round: a smoke test (seconds)
    python -m bench.train_throughput --levers   # what each CPU lever gives the refining recipe

``--levers`` times the whole training step of ``configs/vitrm-cifar10-refine.yaml`` (augmentation
of a uint8 batch, MixUp/CutMix, the recursion, backward, AdamW, EMA) with one change at a time:
a larger batch, channels-last memory format, and the data path left out (the most that a loader
overlapping with the step, ``workers: 1``, could save). Interleaved like the models above.

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
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from vitrm import ViTRMConfig, build_model, num_parameters, vit_config_for
from vitrm.train import TrainConfig, make_optimizer, supervision_loss


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
        steps = self.cfg.trained_steps if self.cfg.recursive else None
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
    parser.add_argument("--levers", action="store_true", help="time the refining recipe with one change at a time")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.rounds = 8, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.levers:
        return levers(args.batch, args.rounds, args.threads)

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


# --------------------------------------------------------------------------- --levers

class RecipeStep:
    """One full training step of a recipe, data path included, on a fixed uint8 batch."""

    def __init__(self, train_cfg, batch: int, channels_last: bool = False, data_path: bool = True):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        from vitrm.analysis import normalize
        from vitrm.data import batch_mix, image_transform
        self.cfg, self.channels_last, self.data_path = train_cfg, channels_last, data_path
        self.model = build_model(train_cfg.model).train()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, train_cfg)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(train_cfg.ema_decay), use_buffers=True)
        self.transform = image_transform(train_cfg.augment, train_cfg.model.image_size)
        self.mix, self.normalize = batch_mix(train_cfg.augment, train_cfg.model.num_classes), normalize
        size = train_cfg.model.image_size
        self.images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
        self.labels = torch.randint(0, train_cfg.model.num_classes, (batch,))
        self.ready = self.normalize(self.images, train_cfg.model.mean, train_cfg.model.std)

    def step(self) -> float:
        cfg = self.cfg
        t0 = time.perf_counter()
        if self.data_path:
            images = torch.stack([self.transform(im) for im in self.images])
            images = self.normalize(images, cfg.model.mean, cfg.model.std)
            images, targets = self.mix(images, self.labels) if self.mix else (
                images, torch.nn.functional.one_hot(self.labels, cfg.model.num_classes).float())
        else:
            images = self.ready
            targets = torch.nn.functional.one_hot(self.labels, cfg.model.num_classes).float()
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits, halt = self.model(images, cfg.model.trained_steps, deep_supervision=True,
                                  detach_between_steps=cfg.detach_between_steps)
        loss, _, _ = supervision_loss(logits, halt, targets, targets.argmax(-1), cfg)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.ema.update_parameters(self.model)
        return (time.perf_counter() - t0) / len(self.labels)


def levers(batch: int, rounds: int, threads: int) -> None:
    from vitrm.train import load_train_config
    cfg = load_train_config(str(Path(__file__).resolve().parents[1] / "configs" / "vitrm-cifar10-refine.yaml"))
    variants = {f"as trained (batch {batch})": RecipeStep(cfg, batch),
                f"batch {2 * batch}": RecipeStep(cfg, 2 * batch),
                "channels-last": RecipeStep(cfg, batch, channels_last=True),
                "no data path (ideal overlap)": RecipeStep(cfg, batch, data_path=False)}
    for v in variants.values():
        v.step()                                   # warm-up
    per_image: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, v in variants.items():
            per_image[name].append(v.step())
    print(f"torch {torch.__version__}, {threads} threads; configs/vitrm-cifar10-refine.yaml "
          f"({num_parameters(next(iter(variants.values())).model):,} parameters); "
          f"median of {rounds} interleaved training steps per variant")
    base = statistics.median(next(iter(per_image.values())))
    print(f"{'variant':32s} {'img/s':>8s} {'x as trained':>13s}")
    for name, values in per_image.items():
        seconds = statistics.median(values)
        print(f"{name:32s} {1 / seconds:>8.1f} {base / seconds:>13.2f}")


def _ratio(times, slower: str, faster: str) -> float:
    return statistics.median(times[slower]) / statistics.median(times[faster])


if __name__ == "__main__":
    main()
