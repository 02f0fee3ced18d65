"""Top-1 by recursion step on the held-out validation images: the figure every recipe choice uses.

The validation split is the one training holds out (``val_size`` images by the fixed permutation
of ``vitrm.data.train_val_split``), so a checkpoint is judged on images it never trained on and
the test set stays untouched.

    .venv/bin/python -m bench.validation_curve runs/probe-linear checkpoints/vitrm-cifar10 --max-steps 8

``--raw`` reads a run's raw weights (its resume state, ``vitrm.train.read_train_state``) instead of the EMA weights it
ships: after one or two epochs an EMA of decay 0.999 is still mostly the initial weights, so a short
probe is judged on its raw weights.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

import vitrm
from bench.common import ROOT, SHARED_SPEC
from vitrm.data import load_split, train_val_split
from vitrm.evaluate import run_steps
from vitrm.train import read_train_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default=SHARED_SPEC)
    parser.add_argument("--val-size", type=int, default=5000, help="as in the training config")
    parser.add_argument("--images", type=int, default=5000, help="the first N validation images")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="a run's raw weights, not its EMA weights")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [str(Path(p).resolve()) for p in args.checkpoints]
    os.chdir(ROOT)   # the data spec is relative to the repository root, as in the configs
    _, val = train_val_split(load_split(args.data, "train"), args.val_size)
    val = val.subset(torch.arange(min(args.images, len(val))), val.name)
    print(f"top-1 % by step on the first {len(val):,} of {args.val_size:,} validation images ({args.data})")
    print("checkpoint".ljust(40) + "".join(f"{s:>7}" for s in range(1, args.max_steps + 1)))
    for path in paths:
        model = vitrm.load(path)
        if args.raw:
            state = read_train_state(path)
            model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
            model.eval()
        steps = args.max_steps if model.config.recursive else 1
        out = run_steps(model, val, steps, progress=False)
        top1 = (out.pred == val.labels[None]).float().mean(1) * 100
        print(Path(path).name.ljust(40) + "".join(f"{v:7.2f}" for v in top1.tolist()), flush=True)


if __name__ == "__main__":
    main()
