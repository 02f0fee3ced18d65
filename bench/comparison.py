"""The controlled comparison: ViTRM against the ViT of equal effective depth and the compact CNN.

    .venv/bin/python -m bench.comparison                       # the equal-budget set (compare60-*) when trained
    .venv/bin/python -m bench.comparison --set short           # the 2-epoch set of the first comparison
    .venv/bin/python -m bench.comparison --write checkpoints/README.md docs/results.md

Every figure is read from the checkpoints' own files or measured here, in one run:

* parameters: counted from the loaded model; MFLOPs per image: counted by torch at the trained N
  (``vitrm.flops_per_image``); training budget: the epochs in ``train_log.csv``;
* the paper's two ratios as measured here: parameters of the ViT over the first ViTRM, and of the
  CNN over it, each with the top-1 difference;
* top-1: ``metrics.json`` (``python -m vitrm evaluate`` on the full test split it names);
* training time: the last ``wall_seconds`` of ``train_log.csv`` (the same machine trained all
  three, one after another, each with one CPU thread, beside other work: a rough figure), and
  a fair one, the time of one training step (deep-supervision forward, backward, AdamW) at
  batch 128, timed interleaved here;
* inference time: ``forward`` at the trained step count on a batch of 256 and on one image,
  timed interleaved (A, B, C, A, B, C, ...) with one thread, reported as medians and as
  ratios to the ViTRM, so that background load shifts every model alike.

``--write FILE...`` replaces the text between the markers ``<!-- comparison:start -->`` and
``<!-- comparison:end -->`` in each FILE, so the tables there never hold a hand-typed number.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import re
import sys
from pathlib import Path

import torch

import vitrm
from bench.common import side_by_side, training_step
from vitrm.train import read_log

ROOT = Path(__file__).resolve().parents[1]

SETS = {
    # One recipe and 60 epochs each (configs/compare60-*.yaml, issue 28); the N=8 ViTRM first: ratios are to it.
    "compare60": ["checkpoints/compare60-vitrm-n8", "checkpoints/compare60-vitrm-n1", "checkpoints/compare60-vit",
                  "checkpoints/compare60-cnn"],
    # The first comparison: two epochs each (configs/compare*.yaml).
    "short": ["checkpoints/vitrm-cifar10-short", "checkpoints/vit-cifar10", "checkpoints/cnn-cifar10"],
}
START, END = "<!-- comparison:start -->", "<!-- comparison:end -->"


def describe(path: Path) -> dict:
    model = vitrm.load(path)
    metrics = vitrm.read_metrics(path) or {}
    log = read_log(path)
    cfg = model.config
    trained = cfg.trained_steps if cfg.recursive else 1
    top1 = metrics.get("top1_by_step")
    return {"model": model, "name": path.name, "arch": cfg.arch,
            "mflops": vitrm.flops_per_image(model, trained) / 1e6,
            "parameters": vitrm.num_parameters(model),
            "effective depth": cfg.effective_depth if cfg.arch != "cnn" else "n/a (convolutional)",
            "top1": top1[trained - 1] if top1 else None,
            "data": metrics.get("data"), "num_images": metrics.get("num_images"),
            "epochs": len(log), "train_hours": float(log[-1]["wall_seconds"]) / 3600 if log else None}


def claimed_ratios(rows: list[dict]) -> str:
    """The paper's "84x fewer parameters than ViTs, 6x fewer than CNNs" as measured on these checkpoints."""
    base = rows[0]
    parts = []
    for arch, label in (("vit", "ViT"), ("cnn", "CNN")):
        for r in (r for r in rows if r["arch"] == arch):
            ratio = r["parameters"] / base["parameters"]
            diff = "" if r["top1"] is None or base["top1"] is None else \
                f", top-1 {100 * (base['top1'] - r['top1']):+.2f} points for the ViTRM"
            parts.append(f"{label} `{r['name']}` over ViTRM `{base['name']}`: {ratio:.2f}x the parameters{diff}")
    if not parts:
        return ""
    return "Parameter ratios (the paper claims 84x for ViTs and 6x for CNNs): " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", help="checkpoint directories, the ViTRM first (default: --set)")
    parser.add_argument("--set", dest="which", choices=sorted(SETS), default=None,
                        help="a named set (default: compare60 when all of its checkpoints exist, else short)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", type=Path, nargs="+", default=[],
                        help="put the table between the comparison markers of these files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    chosen = args.checkpoints or SETS[args.which or ("compare60" if all((ROOT / c).is_dir() for c in SETS["compare60"])
                                                     else "short")]
    missing = [c for c in chosen if not (ROOT / c).is_dir()]
    if missing:
        sys.exit(f"not trained yet: {', '.join(missing)} (configs/compare60-*.yaml say how)")
    rows = [describe(ROOT / c) for c in chosen]
    cfg = rows[0]["model"].config
    batch = torch.randn(256, cfg.in_channels, cfg.image_size, cfg.image_size)
    one = batch[:1]

    def forward(model, x):
        return lambda: model(x)

    labels = torch.arange(128) % cfg.num_classes
    # Copies: a training step changes the weights and the mode of the model it is given.
    train_steps = side_by_side({r["name"]: training_step(copy.deepcopy(r["model"]), batch[:128], labels)
                                for r in rows}, args.repeats)
    with torch.no_grad():
        big = side_by_side({r["name"]: forward(r["model"], batch) for r in rows}, args.repeats)
        small = side_by_side({r["name"]: forward(r["model"], one) for r in rows}, args.repeats * 5)
    base = rows[0]["name"]
    lines = ["| model | parameters | effective depth | MFLOPs / image | epochs | training wall time | "
             "training step, batch 128 | top-1 | inference, batch 256 | inference, 1 image |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n = r["name"]
        top1 = "not evaluated" if r["top1"] is None else f"{100 * r['top1']:.2f}%"
        hours = "?" if r["train_hours"] is None else f"{r['train_hours']:.2f} h"
        lines.append(f"| `{n}` | {r['parameters']:,} | {r['effective depth']} | {r['mflops']:.1f} | {r['epochs']} | "
                     f"{hours} | "
                     f"{train_steps[n]:.0f} ms ({train_steps[n] / train_steps[base]:.2f}x) | {top1} | "
                     f"{big[n]:.0f} ms ({big[n] / big[base]:.2f}x) | "
                     f"{small[n]:.1f} ms ({small[n] / small[base]:.2f}x) |")
    data = {(r["data"], r["num_images"]) for r in rows}
    note = (f"Top-1 on {', '.join(f'{d} ({n:,} test images)' for d, n in data if d)} at each model's trained step "
            "count (CIFAR-10, JPEG q75 copy: not comparable with the lossless official test set). "
            f"Inference: median of {args.repeats} (batch 256) and {args.repeats * 5} (1 image) interleaved runs of "
            f"`forward`; training step: median of {args.repeats} interleaved steps; one thread, "
            f"{platform.machine()} CPU with {os.cpu_count()} cores, torch {torch.__version__}; "
            f"ratios are to `{base}`. Load average during the run: {os.getloadavg()[0]:.2f}. "
            "Produced by `.venv/bin/python -m bench.comparison`.")
    text = "\n".join(lines) + "\n\n" + claimed_ratios(rows) + "\n\n" + note + "\n"
    print(text)
    for file in args.write:
        doc = file.read_text()
        if START not in doc or END not in doc:
            sys.exit(f"{file}: no {START} ... {END} markers to write between")
        doc = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{text}{END}", doc, flags=re.S)
        file.write_text(doc)
        print(f"wrote the table into {file}")


if __name__ == "__main__":
    main()
