"""Per-step metrics of a checkpoint on a dataset split, and top-k predictions for image files.

    python -m vitrm evaluate --checkpoint DIR --data SPEC --max-steps N
    python -m vitrm predict IMAGE... --checkpoint DIR

``evaluate`` runs the model once per batch for steps 1..N (``model.trace``) and derives every
figure from the per-image outputs, so the curves, the per-image table and the halting analysis
agree by construction. It writes into DIR, atomically, and only after the checkpoint and the
data have been checked and every image has been run:

    metrics.json      data, num_images, arch, parameters, trained_steps, max_steps, class_names;
                      lists over steps 1..S: top1_by_step, top5_by_step, per_class_by_step (null
                      for a class absent from the split), confusion_by_step (rows = true class),
                      ece_by_step (15 equal-width bins); halting (threshold, rule, histogram of
                      halting steps, adaptive vs fixed top-1; null for baselines); subset (top-1
                      on every 10th image of the split); timing and device
    predictions.csv   index (position in the split), path (relative to the imagefolder root,
                      empty for torchvision CIFAR), label, label_name, halt_step, then per step s:
                      pred_s, conf_s, prob_true_s, halt_s

A non-recursive baseline (ViT, CNN) counts as one step and has no halting head.
"""

from __future__ import annotations

import datetime
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes
from tqdm import tqdm

from . import checkpoint as ckpt
from .data import DEFAULT_CACHE, DataError, Split, check_spec, load_split, normalize, parse_spec
from .images import InvalidImageError, load_image
from .model import num_parameters

PREDICTIONS = "predictions.csv"
MAX_STEPS = 256                  # beyond this a run is a typo, not an experiment
ECE_BINS = 15
HALT_THRESHOLD = 0.5
HALT_RULE = "stop at the first step whose halting probability >= threshold, else at max_steps"
SUBSET_STRIDE = 10
SUBSET_RULE = "every 10th image of the split (indices 0, 10, 20, ...)"


# --------------------------------------------------------------------------- running the model

@dataclass
class StepOutputs:
    """What the model said about each image at each step; every tensor is [S, N]."""

    pred: torch.Tensor           # int64 argmax class
    conf: torch.Tensor           # softmax probability of the predicted class
    prob_true: torch.Tensor      # softmax probability of the true class
    top5: torch.Tensor           # bool: true class among the 5 most probable
    halt: torch.Tensor | None    # halting probability; None for baselines

    @property
    def steps(self) -> int:
        return self.pred.shape[0]


def is_recursive(model) -> bool:
    return model.config.arch == "vitrm"


def resolve_steps(model, requested: int | None, flag: str = "--max-steps", default: int | None = None) -> int:
    """The step count to run, or a ValueError naming the flag."""
    if not is_recursive(model):
        if requested not in (None, 1):
            raise ValueError(f"{flag} {requested}: a {model.config.arch} baseline is not recursive, "
                             "so it has exactly one step")
        return 1
    steps = default if requested is None else requested
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"{flag} must be between 1 and {MAX_STEPS}, got {steps}")
    return steps


@torch.no_grad()
def run_steps(model, split: Split, steps: int, batch_size: int = 500, device: str | torch.device = "cpu",
              progress: bool = True) -> StepOutputs:
    """Trace every image of ``split`` through ``steps`` steps, keeping per-image summaries only."""
    model.eval()
    cfg = model.config
    n, S = len(split), steps
    pred = torch.empty(S, n, dtype=torch.int64)
    conf, prob_true = torch.empty(S, n), torch.empty(S, n)
    top5 = torch.empty(S, n, dtype=torch.bool)
    halt = torch.empty(S, n) if is_recursive(model) else None
    k = min(5, cfg.num_classes)
    for start in tqdm(range(0, n, batch_size), desc="evaluating", unit="batch", disable=not progress,
                      dynamic_ncols=True, mininterval=1.0):
        end = min(start + batch_size, n)
        images = normalize(split.images[start:end].to(device), cfg.mean, cfg.std)
        trace = model.trace(images, steps, attention=False)
        logits, probs = trace.logits.float().cpu(), trace.probs.float().cpu()     # [S, B, C]
        labels = split.labels[start:end].view(1, -1, 1).expand(S, -1, 1)
        # argmax of the logits, as everywhere else, so a tie cannot make the table disagree.
        pred[:, start:end] = logits.argmax(-1)
        conf[:, start:end] = probs.gather(-1, pred[:, start:end, None]).squeeze(-1)
        prob_true[:, start:end] = probs.gather(-1, labels).squeeze(-1)
        top5[:, start:end] = (logits.topk(k, dim=-1).indices == labels).any(-1)
        if halt is not None:
            halt[:, start:end] = trace.halt.float().cpu()
    return StepOutputs(pred, conf, prob_true, top5, halt)


# --------------------------------------------------------------------------- metrics

def expected_calibration_error(conf: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins (lo, hi] of |bin share| x |accuracy - mean confidence|."""
    index = (conf * bins).ceil().long().clamp(1, bins) - 1
    gap = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap += members.double().mean().item() * abs(correct[members].double().mean().item()
                                                        - conf[members].double().mean().item())
    return gap


def confusion_matrix(labels: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts, rows = true class, columns = predicted class."""
    return torch.bincount(labels * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)


def halt_steps(halt: torch.Tensor, threshold: float = HALT_THRESHOLD) -> torch.Tensor:
    """[N] 1-based step each image halts at under ``HALT_RULE``, from halting probabilities [S, N]."""
    S, n = halt.shape
    reached = halt >= threshold
    return torch.where(reached.any(0), reached.int().argmax(0), torch.full((n,), S - 1)) + 1


def halting_analysis(halt: torch.Tensor, correct: torch.Tensor, threshold: float = HALT_THRESHOLD) -> dict:
    """Where the halting head would stop each image, and what that buys against fixed N.

    ``halt`` and ``correct`` are [S, N]; an image that never reaches the threshold runs all S steps.
    """
    S, n = halt.shape
    stop = halt_steps(halt, threshold)
    chosen_correct = correct[stop - 1, torch.arange(n)]
    return {"threshold": threshold, "rule": HALT_RULE,
            "halt_step_histogram": torch.bincount(stop - 1, minlength=S).tolist(),
            "adaptive_top1": chosen_correct.double().mean().item(),
            "adaptive_mean_steps": stop.double().mean().item(),
            "fixed_top1": correct.double().mean(1).tolist(),
            "mean_halt_prob_by_step": halt.double().mean(1).tolist()}


def step_metrics(out: StepOutputs, labels: torch.Tensor, num_classes: int) -> dict:
    """Every per-step figure of metrics.json, from the per-image outputs of at least one image."""
    correct = out.pred == labels
    confusion = [confusion_matrix(labels, out.pred[s], num_classes) for s in range(out.steps)]
    per_class = []
    for m in confusion:
        totals = m.sum(1)
        # A class with no image in the split has no accuracy: null, never a made-up 0.
        per_class.append([m[c, c].item() / totals[c].item() if totals[c] else None for c in range(num_classes)])
    # Means in float64, so top1 is exactly (correct images) / (images), as recomputed from the table.
    return {"top1_by_step": correct.double().mean(1).tolist(),
            "top5_by_step": out.top5.double().mean(1).tolist(),
            "per_class_by_step": per_class,
            "confusion_by_step": [m.tolist() for m in confusion],
            "ece_by_step": [expected_calibration_error(out.conf[s], correct[s]) for s in range(out.steps)],
            "halting": None if out.halt is None else halting_analysis(out.halt, correct)}


def subset_metrics(out: StepOutputs, labels: torch.Tensor, indices: torch.Tensor) -> dict:
    """Top-1 per step on the evaluated images whose split index is a multiple of 10."""
    keep = indices % SUBSET_STRIDE == 0
    correct = (out.pred[:, keep] == labels[keep]).double()
    return {"rule": SUBSET_RULE, "num_images": int(keep.sum()),
            "top1_by_step": (correct.mean(1) if keep.any() else torch.zeros(out.steps)).tolist()}


def predictions_table(out: StepOutputs, labels: torch.Tensor, indices: torch.Tensor, class_names,
                      paths: list[str] | None) -> pd.DataFrame:
    """The per-image table (predictions.csv): identity and label, then four columns per step."""
    n = len(labels)
    columns: dict[str, object] = {
        "index": indices.numpy(),
        "path": paths if paths is not None else [""] * n,
        "label": labels.numpy(),
        "label_name": [class_names[i] for i in labels.tolist()],
        "halt_step": (pd.Series(halt_steps(out.halt).numpy()) if out.halt is not None
                      else pd.Series([None] * n, dtype="Int64")),
    }
    for s in range(out.steps):
        columns[f"pred_{s + 1}"] = out.pred[s].numpy()
        columns[f"conf_{s + 1}"] = out.conf[s].numpy()
        columns[f"prob_true_{s + 1}"] = out.prob_true[s].numpy()
        columns[f"halt_{s + 1}"] = out.halt[s].numpy() if out.halt is not None else [None] * n
    return pd.DataFrame(columns)


def summary_table(metrics: dict) -> pd.DataFrame:
    steps = len(metrics["top1_by_step"])
    table = pd.DataFrame({"step": range(1, steps + 1), "top1": metrics["top1_by_step"],
                          "top5": metrics["top5_by_step"], "ECE": metrics["ece_by_step"]})
    if metrics["halting"] is not None:
        table["mean halt prob"] = metrics["halting"]["mean_halt_prob_by_step"]
    return table


# --------------------------------------------------------------------------- the evaluate command

def _data_note(spec: str) -> str:
    kind, path = parse_spec(spec)
    return "CIFAR-10, JPEG q75 copy" if kind == "imagefolder" and Path(path).resolve().name == "cifar10-jpeg" else ""


def _imagefolder_paths(root: str, split: str, expected: int) -> list[str]:
    """File paths relative to the imagefolder root, in the order ``load_split`` reads them."""
    samples = ImageFolder(str(Path(root) / split)).samples
    if len(samples) != expected:
        raise DataError(f"{root}/{split} changed while it was being read ({len(samples)} files now, "
                        f"{expected} decoded); run evaluate again")
    return [Path(os.path.relpath(p, root)).as_posix() for p, _ in samples]


def _check_classes(data: str, names, cfg) -> None:
    def show(names):
        return f"{list(names)[:10]}{'...' if len(names) > 10 else ''}"
    if tuple(names) != tuple(cfg.class_names):
        raise DataError(f"{data} has classes {show(names)} but the checkpoint was trained on "
                        f"{show(cfg.class_names)}; labels would not line up")


def evenly_spaced(n: int, limit: int | None) -> torch.Tensor:
    """Indices of ``limit`` images spread over a split of ``n`` (all when limit is None).

    Spread, not the first ``limit``, because ImageFolder orders files by class.
    """
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.arange(0, n, max(1, n // limit))[:limit]


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str, split: str = "test", data_dir="data",
                        max_steps: int | None = None, limit: int | None = None, batch_size: int = 500,
                        cache_dir=DEFAULT_CACHE, progress: bool = True) -> dict:
    """Evaluate, write metrics.json and predictions.csv into ``checkpoint``, and return the metrics.

    Everything that can fail (checkpoint, data spec, flags, decoding the images) is checked
    before the first byte is written.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    path = Path(checkpoint)
    model = ckpt.load(path)
    cfg = model.config
    steps = resolve_steps(model, max_steps, default=2 * cfg.trained_steps)
    check_spec(data, data_dir)
    kind, root = parse_spec(data)
    if kind == "imagefolder":
        # The folder names are the classes: refuse a mismatch before decoding a single image.
        _check_classes(data, find_classes(str(Path(root) / split))[0], cfg)
    full = load_split(data, split, data_dir, cfg.image_size, cache_dir)
    _check_classes(data, full.class_names, cfg)
    if tuple(full.images.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
        raise DataError(f"{data} holds {tuple(full.images.shape[1:])} images; the model expects "
                        f"{(cfg.in_channels, cfg.image_size, cfg.image_size)}")
    indices = evenly_spaced(len(full), limit)
    part = full.subset(indices)
    paths = None
    if kind == "imagefolder":
        every_path = _imagefolder_paths(root, split, len(full))
        paths = [every_path[i] for i in indices.tolist()]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    t0 = time.perf_counter()
    out = run_steps(model, part, steps, batch_size, device, progress)
    seconds = time.perf_counter() - t0

    metrics = {"data": data, "split": split, "data_note": _data_note(data), "num_images": len(part),
               "arch": cfg.arch, "parameters": num_parameters(model),
               "trained_steps": cfg.trained_steps if is_recursive(model) else 1, "max_steps": steps,
               "class_names": list(cfg.class_names)}
    metrics |= step_metrics(out, part.labels, cfg.num_classes)
    metrics["subset"] = subset_metrics(out, part.labels, indices)
    metrics |= {"seconds": round(seconds, 3), "images_per_second": round(len(part) / max(seconds, 1e-9), 1),
                "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "device": device.type}
    table = predictions_table(out, part.labels, indices, cfg.class_names, paths)
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.6g")
    ckpt.atomic_write_bytes(path / PREDICTIONS, buf.getvalue().encode())
    ckpt.atomic_write_json(path / ckpt.METRICS, metrics)
    return metrics


def evaluate_cli(args) -> None:
    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.data_dir, args.max_steps,
                                  args.limit, args.batch_size, args.cache_dir or DEFAULT_CACHE,
                                  progress=not args.quiet)
    note = f" ({metrics['data_note']})" if metrics["data_note"] else ""
    print(f"{metrics['arch']} on {metrics['data']}{note}, {metrics['split']} split: {metrics['num_images']:,} "
          f"images, {metrics['images_per_second']:.0f} images/s ({metrics['max_steps']} steps each)")
    print(summary_table(metrics).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    h = metrics["halting"]
    if h is not None:
        print(f"adaptive halting (threshold {h['threshold']}): top1 {h['adaptive_top1']:.4f} "
              f"with {h['adaptive_mean_steps']:.2f} steps on average")
    print(f"wrote {Path(args.checkpoint) / ckpt.METRICS} and {Path(args.checkpoint) / PREDICTIONS}")


# --------------------------------------------------------------------------- the predict command

def format_prediction(name: str, probs: torch.Tensor, halt: torch.Tensor | None, class_names, top_k: int) -> str:
    """``probs`` [S, C] and ``halt`` [S] of one image, as one line per step."""
    lines = [name]
    for s in range(probs.shape[0]):
        p, idx = probs[s].topk(top_k)
        classes = ", ".join(f"{class_names[i]} {v:.3f}" for v, i in zip(p.tolist(), idx.tolist()))
        lines.append(f"  step {s + 1}: {classes}" + (f"  (halt {halt[s].item():.2f})" if halt is not None else ""))
    return "\n".join(lines)


def predict_cli(args) -> bool:
    """Print the top-k classes at every step for each image; False if any image could not be read."""
    model = ckpt.load(args.checkpoint)
    cfg = model.config
    steps = resolve_steps(model, args.steps, flag="--steps", default=cfg.trained_steps)
    if not 1 <= args.top_k <= cfg.num_classes:
        raise ValueError(f"--top-k must be between 1 and {cfg.num_classes} (the number of classes), got {args.top_k}")
    all_read = True
    for name in args.images:
        try:
            image = load_image(name)
        except InvalidImageError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            all_read = False
            continue
        trace = model.trace(model.preprocess(image), steps, attention=False)
        halt = trace.halt[:, 0] if trace.halt is not None else None
        print(format_prediction(name, trace.probs[:, 0], halt, cfg.class_names, args.top_k), flush=True)
    return all_read
