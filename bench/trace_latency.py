"""What the app and evaluation pay for a trace, measured side by side in one run on CPU.

    .venv/bin/python -m bench.trace_latency            # about 4 minutes on 2 cores
    .venv/bin/python -m bench.trace_latency --quick    # a smaller version in under a minute

Four tables:

1. ``model.trace`` latency for 1..32 steps at batch 1 (with attention maps, as the app asks)
   and at batch 256 (without maps, as evaluation asks; with maps where they fit in
   ``--map-budget-gb``), next to ``forward`` for the cost of materialising attention.
2. Evaluation throughput: images/s of ``forward`` at the trained step count over the
   CIFAR-10 test set (the JPEG q75 copy in ../shared, when present) or as many random
   images, and of a trace without maps to twice that count on a subset.
3. The ViTRM against the ViT baseline of equal effective depth: parameters, latency, and
   peak memory of inference and of one training step. Each memory figure comes from a fresh
   subprocess (the growth of its peak RSS during the workload), so one cannot hide another.
4. The app's cached trace against recomputing on every slider move: reading 8 slider
   positions out of one trace to 4N steps, against calling ``model.trace`` for each.

Whatever is compared is timed interleaved (A, B, A, B, ...) and reported as a median, so
that a background load drifting over the run shifts both sides alike. The model is the
flagship's (checkpoints/vitrm-cifar10): its weights when it holds them, else random weights
of its architecture (``bench/common.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import vitrm
from bench.common import (
    describe_model,
    environment,
    images_like,
    load_model,
    side_by_side,
    table,
    test_images,
    training_step,
)
from testkit.oddfiles import proc_status_mb  # the tests' memory probe, shared
from vitrm import ViT, ViTRM, ViTRMConfig, num_parameters, vit_config_for
from vitrm.analysis import normalize
from vitrm.config import parse_model_config

ROOT = Path(__file__).resolve().parents[1]

# repeats: timed calls per side at batch 1; big_repeats: at the big batch and for training steps.
FULL = dict(steps=(1, 2, 4, 8, 16, 32), big_batch=256, repeats=15, big_repeats=3, eval_images=10_000,
            trace_images=1_000, train_batch=64, slider_positions=8)
QUICK = dict(steps=(1, 4), big_batch=32, repeats=3, big_repeats=1, eval_images=500, trace_images=250,
             train_batch=8, slider_positions=8)


# --------------------------------------------------------------------------- helpers

def attention_map_bytes(cfg: ViTRMConfig, steps: int, batch: int) -> int:
    T = cfg.num_tokens
    L = 2 * T + 1 if cfg.combine == "concat" else T + 1
    return 4 * steps * cfg.layers * batch * cfg.heads * (cfg.latent_updates * L * L + (T + 1) ** 2)


# --------------------------------------------------------------------------- 1. trace latency

def trace_latency(model: ViTRM, plan: dict, budget_bytes: float) -> None:
    cfg, B = model.config, plan["big_batch"]
    one, big = images_like(cfg, 1), images_like(cfg, B)
    rows = []
    for steps in plan["steps"]:
        small = side_by_side({"forward": lambda s=steps: model(one, s), "trace": lambda s=steps: model.trace(one, s)},
                             plan["repeats"])
        # Batch 1 warmed everything up; a big-batch call is long enough not to need a warm-up.
        big_fns = {"no maps": lambda s=steps: model.trace(big, s, attention=False)}
        need = attention_map_bytes(cfg, steps, B)
        if need <= budget_bytes:
            big_fns["maps"] = lambda s=steps: model.trace(big, s)
        large = side_by_side(big_fns, plan["big_repeats"], warm_up=False)
        rows.append({
            "steps": steps, "forward b=1 ms": f"{small['forward']:.1f}", "trace b=1 ms": f"{small['trace']:.1f}",
            "trace/forward": f"{small['trace'] / small['forward']:.2f}x",
            f"trace b={B} no maps ms": f"{large['no maps']:.0f}",
            f"images/s b={B}": f"{B / large['no maps'] * 1e3:.0f}",
            f"trace b={B} maps ms": f"{large['maps']:.0f}" if "maps" in large else f"skipped ({need / 2**30:.1f} GB)",
            "maps/no maps": f"{large['maps'] / large['no maps']:.2f}x" if "maps" in large else "-"})
    table(f"1. trace latency: batch 1 with attention maps; batch {B} without, and with where the maps "
          f"fit in {budget_bytes / 2**30:.1f} GB (medians of {plan['repeats']} interleaved calls at batch 1, "
          f"{plan['big_repeats']} at batch {B})", rows)


# --------------------------------------------------------------------------- 2. evaluation throughput

def evaluation_throughput(model: ViTRM, plan: dict) -> None:
    cfg, batch, N = model.config, 500, model.config.trained_steps
    images, source = test_images(plan["eval_images"], cfg)

    def run(fn, count):
        start = time.perf_counter()
        for i in range(0, count, batch):
            fn(normalize(images[i:min(i + batch, count)], cfg.mean, cfg.std))
        return time.perf_counter() - start

    rows, base = [], None
    for label, fn, count in [
            (f"forward, {N} steps", lambda x: model(x, N), len(images)),
            (f"trace without maps, {2 * N} steps", lambda x: model.trace(x, 2 * N, attention=False),
             min(len(images), plan["trace_images"]))]:
        seconds = run(fn, count)
        rate = count / seconds
        base = base or rate
        rows.append({"workload": label, "images": count, "seconds": f"{seconds:.1f}",
                     "images/s": f"{rate:.0f}", "vs forward": f"{rate / base:.2f}x"})
    table(f"2. evaluation throughput, batch {batch}, on {source}", rows,
          "A trace to 2N steps computes twice the steps, so about 0.5x is the expected ratio.")


# --------------------------------------------------------------------------- 3. ViTRM vs ViT

def build(arch: str, cfg: ViTRMConfig):
    return (ViTRM(cfg) if arch == "vitrm" else ViT(vit_config_for(cfg))).eval()


def worker(job: dict) -> dict:
    """One workload in a fresh process; returns the growth of its peak RSS while it runs.

    Writing 5 to /proc/self/clear_refs resets the kernel's peak-RSS mark (VmHWM) to the
    current RSS, so the transient peak of importing torch cannot hide the workload's.
    """
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    cfg = parse_model_config(job["config"])
    model = build(job["arch"], cfg)
    images, labels = images_like(cfg, job["batch"]), torch.randint(0, cfg.num_classes, (job["batch"],))
    if job["workload"] == "inference":
        def step():
            with torch.no_grad():
                model(images)
    else:
        step = training_step(model, images, labels)
    with torch.no_grad():
        model(images[:1])           # weights touched, thread pools up
    before = proc_status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    step()
    step()
    return {"peak_growth_mb": proc_status_mb("VmHWM") - before}


def peak_growth_mb(arch: str, cfg: ViTRMConfig, workload: str, batch: int, threads: int) -> float:
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    job = dict(arch=arch, config=config, workload=workload, batch=batch, threads=threads)
    done = subprocess.run([sys.executable, "-m", "bench.trace_latency", "--worker", json.dumps(job)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"worker {arch}/{workload} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_growth_mb"]


def vitrm_vs_vit(model: ViTRM, plan: dict, threads: int) -> None:
    cfg, B, TB = model.config, plan["big_batch"], plan["train_batch"]
    torch.manual_seed(0)
    nets = {"vitrm": build("vitrm", cfg), "vit": build("vit", cfg)}
    one, big = images_like(cfg, 1), images_like(cfg, B)
    train_images, labels = images_like(cfg, TB), torch.randint(0, cfg.num_classes, (TB,))
    with torch.no_grad():
        lat1 = side_by_side({a: (lambda n=n: n(one)) for a, n in nets.items()}, plan["repeats"])
        latB = side_by_side({a: (lambda n=n: n(big)) for a, n in nets.items()}, plan["big_repeats"])
    train = side_by_side({a: training_step(n, train_images, labels) for a, n in nets.items()}, plan["big_repeats"])
    measures = {
        "parameters": {a: num_parameters(n) for a, n in nets.items()},
        "latency b=1 ms": lat1,
        f"latency b={B} ms": latB,
        f"peak RSS growth b={B} MB": {a: peak_growth_mb(a, cfg, "inference", B, threads) for a in nets},
        f"train step b={TB} ms": train,
        f"train peak RSS growth b={TB} MB": {a: peak_growth_mb(a, cfg, "train", TB, threads) for a in nets},
    }
    rows = []
    for name, m in measures.items():
        fmt = "{:,}" if name == "parameters" else "{:.1f}"
        rows.append({"measure": name, "ViTRM": fmt.format(m["vitrm"]), "ViT": fmt.format(m["vit"]),
                     "ViT / ViTRM": f"{m['vit'] / m['vitrm']:.2f}x" if m["vitrm"] else "-"})
    table(f"3. ViTRM vs ViT of equal effective depth ({cfg.effective_depth} layers = {cfg.trained_steps} steps x "
          f"{cfg.block_calls_per_step} block calls x {cfg.layers} layers)", rows,
          "The ViTRM train step is deep supervision over its N steps (the graph of every step is kept until\n"
          "backward); the ViT's is one forward and backward. Memory: a fresh process per cell.")


# --------------------------------------------------------------------------- 4. cached trace vs recompute

def slider(model: ViTRM, plan: dict) -> None:
    cfg = model.config
    max_steps = vitrm.steps.max_steps(cfg)        # the most the app offers
    image = images_like(cfg, 1)
    k = plan["slider_positions"]
    positions = sorted({max(1, round(max_steps * (i + 1) / k)) for i in range(k)})

    def read(trace, s):
        # What the scrubber reads at a step: probabilities, halting, answer attention, z norms.
        t = s - 1
        trace.probs[t, 0].topk(3)
        float(trace.halt[t, 0])
        trace.attention.answer[t, :, 0, :, 0, 1:].mean(1)
        trace.z[t, 0].norm(dim=-1)

    cached_trace = model.trace(image, max_steps)
    ms = side_by_side({
        "once": lambda: model.trace(image, max_steps),
        "cached": lambda: [read(cached_trace, s) for s in positions],
        "recompute": lambda: [read(model.trace(image, s), s) for s in positions],
    }, plan["repeats"])
    moves = len(positions)
    rows = [
        {"approach": f"one trace to {max_steps} steps, on upload", "total ms": f"{ms['once']:.1f}", "per move ms": "-"},
        {"approach": f"read {moves} positions from the cached trace", "total ms": f"{ms['cached']:.2f}",
         "per move ms": f"{ms['cached'] / moves:.3f}"},
        {"approach": f"model.trace(image, s) at each of {moves} positions", "total ms": f"{ms['recompute']:.1f}",
         "per move ms": f"{ms['recompute'] / moves:.2f}"},
    ]
    table(f"4. {moves} slider moves (steps {positions}): cached trace vs recompute", rows,
          f"recompute / cached, per move: {ms['recompute'] / ms['cached']:.0f}x. The upload's one trace costs "
          f"{ms['once'] / (ms['recompute'] / moves):.1f} recomputed moves.")


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a check in under a minute")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared 2-core box)")
    parser.add_argument("--map-budget-gb", type=float, default=2.0,
                        help="largest set of attention maps to materialise at the big batch")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    os.chdir(ROOT)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plan = QUICK if args.quick else FULL
    model, source = load_model()
    print(f"# trace latency benchmark{' (--quick)' if args.quick else ''}")
    print(f"{environment()} at start")
    print(describe_model(model, source))
    start = time.perf_counter()
    with torch.no_grad():
        trace_latency(model, plan, args.map_budget_gb * 2**30)
        evaluation_throughput(model, plan)
    vitrm_vs_vit(model, plan, args.threads)
    with torch.no_grad():
        slider(model, plan)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
