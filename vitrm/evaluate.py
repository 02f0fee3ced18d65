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
    predictions.csv.gz  a gzipped CSV, byte-for-byte reproducible: index (position in the split),
                      path (relative to the imagefolder root, empty for torchvision CIFAR), label,
                      label_name, halt_step, then per step s: pred_s, conf_s, prob_true_s, halt_s

Every rule behind these figures (halting, calibration, the subset, the table's columns) lives in
``vitrm.analysis``, and the step counts (the default 2N, the most 4N) in ``vitrm.steps``. The app's
sample evaluation runs this same pipeline (``evaluate_split``), with a progress callback for its
progress bar. A non-recursive baseline (ViT, CNN) counts as one step and has no halting head.
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .analysis import StepOutputs, evenly_spaced, metrics_record, normalize, predictions_table, step_outputs
from .data import DEFAULT_CACHE, DataError, Split, check_spec, list_imagefolder, load_split, parse_spec
from .errors import UsageError
from .images import InvalidImageError, load_image
from .model import num_parameters
from .paths import UnsafePathError, find_classes
from .steps import resolve as resolve_steps

PREDICTIONS = ckpt.PREDICTIONS
Progress = Callable[[int, int], None]    # called with (images done, images in all) after each batch


# --------------------------------------------------------------------------- running the model

@torch.no_grad()
def run_steps(model, split: Split, steps: int, batch_size: int = 500, device: str | torch.device = "cpu",
              progress: bool | Progress = True) -> StepOutputs:
    """Trace every image of ``split`` through ``steps`` steps, keeping per-image summaries only.

    ``progress``: True for a bar on the terminal, False for none, or a ``Progress`` function (the app's bar).
    """
    model.eval()
    cfg = model.config
    starts = range(0, len(split), batch_size)
    report = progress if callable(progress) else None
    parts = []
    for start in tqdm(starts, desc="evaluating", unit="batch", disable=report is not None or not progress,
                      dynamic_ncols=True, mininterval=1.0):
        end = min(start + batch_size, len(split))
        images = normalize(split.images[start:end].to(device), cfg.mean, cfg.std)
        parts.append(step_outputs(model.trace(images, steps, attention=False), split.labels[start:end]))
        if report is not None:
            report(end, len(split))
    return StepOutputs.concatenate(parts)


def evaluate_split(model, part: Split, steps: int, data: str, split: str, indices: torch.Tensor,
                   paths: list[str] | None = None, batch_size: int = 500, device: str | torch.device = "cpu",
                   progress: bool | Progress = True) -> tuple[dict, pd.DataFrame]:
    """(metrics.json's content, the per-image table) of ``part``, the images at ``indices`` of ``data``'s
    ``split``, run through ``steps`` steps: the one pipeline behind the evaluate command and the app."""
    t0 = time.perf_counter()
    out = run_steps(model, part, steps, batch_size, device, progress)
    seconds = time.perf_counter() - t0
    cfg = model.config
    metrics = metrics_record(cfg, num_parameters(model), data, split, out, part.labels, indices)
    metrics |= {"seconds": round(seconds, 3), "images_per_second": round(len(part) / max(seconds, 1e-9), 1),
                "device": torch.device(device).type}
    return metrics, predictions_table(out, part.labels, indices, cfg.class_names, paths)


def summary_table(metrics: dict) -> pd.DataFrame:
    steps = len(metrics["top1_by_step"])
    table = pd.DataFrame({"step": range(1, steps + 1), "top1": metrics["top1_by_step"],
                          "top5": metrics["top5_by_step"], "ECE": metrics["ece_by_step"]})
    if metrics["halting"] is not None:
        table["mean halt prob"] = metrics["halting"]["mean_halt_prob_by_step"]
    return table


# --------------------------------------------------------------------------- the evaluate command

def _imagefolder_paths(root: str, split: str, expected: int) -> list[str]:
    """File paths relative to the imagefolder root, in the order ``load_split`` reads them."""
    samples = list_imagefolder(Path(root) / split, report=lambda line: None).samples
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


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str, split: str = "test", data_dir="data",
                        max_steps: int | None = None, limit: int | None = None, batch_size: int = 500,
                        cache_dir=DEFAULT_CACHE, progress: bool = True) -> dict:
    """Evaluate, write metrics.json and predictions.csv into ``checkpoint``, and return the metrics.

    Everything that can fail (checkpoint, data spec, flags, decoding the images) is checked
    before the first byte is written.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    path = Path(checkpoint)
    model = ckpt.load(path)
    cfg = model.config
    steps = resolve_steps(cfg, max_steps)
    check_spec(data, data_dir)
    kind, root = parse_spec(data)
    if kind == "imagefolder":
        # The folder names are the classes: refuse a mismatch before decoding a single image.
        try:
            classes = find_classes(Path(root) / split)
        except UnsafePathError as e:
            raise DataError(str(e)) from None
        _check_classes(data, classes, cfg)
    full = load_split(data, split, data_dir, cfg.image_size, cache_dir, progress=bool(progress),
                      skip_unreadable=True)
    if full.skipped:
        # Counted, named and left out: one bad file among thousands does not end the run (metrics.json keeps the
        # count, and the table lists only the images evaluated).
        _, why = full.skipped[0]
        print(f"warning: {len(full.skipped)} unreadable image(s) skipped ({why})", file=sys.stderr, flush=True)
    _check_classes(data, full.class_names, cfg)
    if tuple(full.images.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
        raise DataError(f"{data} holds {tuple(full.images.shape[1:])} images; the model expects "
                        f"{(cfg.in_channels, cfg.image_size, cfg.image_size)}")
    indices = evenly_spaced(len(full), limit)
    part = full.subset(indices)
    paths = None
    if kind == "imagefolder":
        skipped = {Path(os.path.relpath(p, root)).as_posix() for p, _ in full.skipped}
        every_path = [p for p in _imagefolder_paths(root, split, len(full) + len(skipped)) if p not in skipped]
        paths = [every_path[i] for i in indices.tolist()]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    metrics, table = evaluate_split(model, part, steps, data, split, indices, paths, batch_size, device, progress)
    metrics["evaluated_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if full.skipped:
        metrics["skipped_images"] = len(full.skipped)
    ckpt.write_predictions(path, table)
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
    steps = resolve_steps(cfg, args.steps, flag="--steps", default=cfg.trained_steps)
    if not 1 <= args.top_k <= cfg.num_classes:
        raise UsageError(f"--top-k must be between 1 and {cfg.num_classes} (the number of classes), got {args.top_k}")
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
