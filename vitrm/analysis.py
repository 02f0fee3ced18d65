"""The rules that ``python -m vitrm evaluate`` and the app share, each written once.

    from vitrm import analysis
    out = analysis.step_outputs(model.trace(analysis.normalize(images, cfg.mean, cfg.std), 8), labels)
    metrics = analysis.metrics_record(cfg, parameters, data="cifar10", split="test", out=out, labels=labels)
    analysis.halting_steps(out.halt)       # [N] the step each image halts at under HALT_RULE

* Normalization of a uint8 batch with a config's mean and std (the model's ``preprocess``,
  training, evaluation and the app all call ``normalize``).
* The halting rule: stop at the first step whose halting probability reaches the threshold.
* Per-step statistics of a set of images: top-1, top-5, per class, confusion, calibration,
  and what adaptive halting buys against a fixed step count.
* Metrics assembly: the dictionary written to ``metrics.json`` (and computed in the app on a
  sample) and the per-image table written to ``predictions.csv``.
* Class directions in y space, and a model's parameters grouped by the part they belong to.

Nothing here runs a dataset or touches a file: callers pass tensors and get tensors, numbers
and tables back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from .provenance import data_note

__all__ = [
    "normalize", "HALT_THRESHOLD", "HALT_RULE", "ECE_BINS", "SUBSET_STRIDE", "SUBSET_RULE",
    "StepOutputs", "step_outputs", "halting_steps", "halting_step", "halting_analysis", "halting_curve",
    "halting_budget", "halting_tradeoff", "HALT_TOLERANCE",
    "expected_calibration_error", "confusion_matrix", "step_metrics", "subset_metrics", "metrics_record",
    "predictions_table", "evenly_spaced", "class_directions", "parameters_by_part", "data_note",
]

ECE_BINS = 15
HALT_THRESHOLD = 0.5
HALT_RULE = "stop at the first step whose halting probability >= threshold, else at max_steps"
# The halting curve's thresholds, and how close to top-1 at N a halting budget must stay.
HALT_CURVE_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05)) + (0.98, 0.99)
HALT_TOLERANCE = 0.005
SUBSET_STRIDE = 10
SUBSET_RULE = "every 10th image of the split (indices 0, 10, 20, ...)"


def normalize(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images [B, C, H, W] -> float, scaled to [0, 1] and standardized per channel."""
    mean = torch.tensor(mean, device=images_uint8.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=images_uint8.device).view(1, -1, 1, 1)
    return (images_uint8.float() / 255.0 - mean) / std


# --------------------------------------------------------------------------- per-image outputs

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

    @classmethod
    def concatenate(cls, parts: list[StepOutputs]) -> StepOutputs:
        """One StepOutputs from several batches' (images along dim 1)."""
        def cat(name):
            if getattr(parts[0], name) is None:
                return None
            return torch.cat([getattr(p, name) for p in parts], dim=1)
        return cls(**{f.name: cat(f.name) for f in fields(cls)})


def step_outputs(trace, labels: torch.Tensor) -> StepOutputs:
    """The per-image summary of one batch's ``Trace`` ([S, B, C] logits) against its labels [B]."""
    logits, probs = trace.logits.float().cpu(), trace.probs.float().cpu()     # [S, B, C]
    S, k = logits.shape[0], min(5, logits.shape[-1])
    targets = labels.view(1, -1, 1).expand(S, -1, 1)
    # argmax of the logits, as everywhere else, so a tie cannot make the table disagree.
    pred = logits.argmax(-1)
    return StepOutputs(pred=pred,
                       conf=probs.gather(-1, pred[..., None]).squeeze(-1),
                       prob_true=probs.gather(-1, targets).squeeze(-1),
                       top5=(logits.topk(k, dim=-1).indices == targets).any(-1),
                       halt=None if trace.halt is None else trace.halt.float().cpu())


# --------------------------------------------------------------------------- halting

def halting_steps(halt: torch.Tensor, threshold: float = HALT_THRESHOLD) -> torch.Tensor:
    """[N] 1-based step each image halts at under ``HALT_RULE``, from halting probabilities [S, N]."""
    halt = torch.as_tensor(halt)
    S, n = halt.shape
    reached = halt >= threshold
    return torch.where(reached.any(0), reached.int().argmax(0), torch.full((n,), S - 1)) + 1


def halting_step(halt, threshold: float = HALT_THRESHOLD) -> int | None:
    """First step (1-based) of one image's halting probabilities [S] that reaches the threshold; None if none does."""
    if halt is None:
        return None
    halt = torch.as_tensor(halt)
    if not (halt >= threshold).any():
        return None
    return int(halting_steps(halt[:, None], threshold)[0])


def halting_analysis(halt: torch.Tensor, correct: torch.Tensor, threshold: float = HALT_THRESHOLD,
                     reference_step: int | None = None) -> dict:
    """Where the halting head would stop each image, and what that buys against fixed N.

    ``halt`` and ``correct`` are [S, N]; an image that never reaches the threshold runs all S steps.
    With ``reference_step`` (the trained N) the result also holds the whole threshold curve and
    ``budget``: the fewest mean steps that stay within HALT_TOLERANCE of top-1 at that step.
    """
    S, n = halt.shape
    stop = halting_steps(halt, threshold)
    chosen_correct = correct[stop - 1, torch.arange(n)]
    result = {"threshold": threshold, "rule": HALT_RULE,
              "halt_step_histogram": torch.bincount(stop - 1, minlength=S).tolist(),
              "adaptive_top1": chosen_correct.double().mean().item(),
              "adaptive_mean_steps": stop.double().mean().item(),
              "fixed_top1": correct.double().mean(1).tolist(),
              "mean_halt_prob_by_step": halt.double().mean(1).tolist()}
    if reference_step is not None:
        curve = halting_curve(halt, correct)
        reference = result["fixed_top1"][min(reference_step, S) - 1]
        result["curve"] = curve.to_dict("list")
        result["budget"] = halting_budget(curve, reference, reference_step=min(reference_step, S))
    return result


def halting_curve(halt: torch.Tensor, correct: torch.Tensor, thresholds=HALT_CURVE_THRESHOLDS) -> pd.DataFrame:
    """Top-1 and mean steps of the halting rule at each threshold; ``halt`` and ``correct`` are [S, N]."""
    halt, correct = torch.as_tensor(halt), torch.as_tensor(correct)
    columns = torch.arange(halt.shape[1])
    rows = []
    for t in thresholds:
        stop = halting_steps(halt, float(t))
        rows.append({"threshold": round(float(t), 4), "mean_steps": stop.double().mean().item(),
                     "top1": correct[stop - 1, columns].double().mean().item()})
    return pd.DataFrame(rows)


def halting_budget(curve: pd.DataFrame, reference_top1: float, tolerance: float = HALT_TOLERANCE,
                   reference_step: int | None = None) -> dict | None:
    """The threshold with the fewest mean steps whose top-1 stays within ``tolerance`` of the reference.

    None when no threshold of the curve does (the head cannot save steps at that accuracy).
    """
    within = curve[curve["top1"] >= reference_top1 - tolerance - 1e-12]
    if within.empty:
        return None
    best = within.loc[within["mean_steps"].idxmin()]
    return {"tolerance": tolerance, "reference_step": reference_step, "reference_top1": reference_top1,
            "threshold": float(best["threshold"]), "mean_steps": float(best["mean_steps"]),
            "top1": float(best["top1"])}


def halting_tradeoff(predictions: pd.DataFrame, thresholds=HALT_CURVE_THRESHOLDS) -> pd.DataFrame:
    """``halting_curve`` from a per-image table (predictions.csv)."""
    steps = sum(1 for c in predictions.columns if c.startswith("pred_"))
    # Copies: a table read by pandas may hand out read-only arrays, which torch will not wrap.
    halt = torch.tensor(predictions[[f"halt_{s}" for s in range(1, steps + 1)]].to_numpy(dtype=float).T)
    preds = torch.tensor(predictions[[f"pred_{s}" for s in range(1, steps + 1)]].to_numpy().T)
    labels = torch.tensor(predictions["label"].to_numpy())
    return halting_curve(halt, preds == labels, thresholds)


# --------------------------------------------------------------------------- per-step statistics

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


def step_metrics(out: StepOutputs, labels: torch.Tensor, num_classes: int, trained_steps: int | None = None) -> dict:
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
            "halting": None if out.halt is None else halting_analysis(out.halt, correct,
                                                                        reference_step=trained_steps)}


def subset_metrics(out: StepOutputs, labels: torch.Tensor, indices: torch.Tensor) -> dict:
    """Top-1 per step on the evaluated images whose split index is a multiple of 10."""
    keep = indices % SUBSET_STRIDE == 0
    correct = (out.pred[:, keep] == labels[keep]).double()
    return {"rule": SUBSET_RULE, "num_images": int(keep.sum()),
            "top1_by_step": (correct.mean(1) if keep.any() else torch.zeros(out.steps)).tolist()}


def evenly_spaced(n: int, limit: int | None) -> torch.Tensor:
    """Indices of ``limit`` images spread over a split of ``n`` (all when limit is None).

    Spread, not the first ``limit``, because ImageFolder orders files by class.
    """
    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.arange(0, n, max(1, n // limit))[:limit]


# --------------------------------------------------------------------------- metrics assembly

def metrics_record(config, parameters: int, data: str, split: str, out: StepOutputs, labels: torch.Tensor,
                   indices: torch.Tensor | None = None) -> dict:
    """metrics.json's content, less timing: what was run on what, then every per-step figure.

    With ``indices`` (each image's position in its split) the fixed-subset figures are added.
    """
    recursive = config.recursive
    metrics = {"data": data, "split": split, "data_note": data_note(data), "num_images": len(labels),
               "arch": config.arch, "parameters": parameters,
               "trained_steps": config.trained_steps if recursive else 1, "max_steps": out.steps,
               "class_names": list(config.class_names)}
    metrics |= step_metrics(out, labels, config.num_classes, metrics["trained_steps"] if recursive else None)
    if indices is not None:
        metrics["subset"] = subset_metrics(out, labels, indices)
    return metrics


def predictions_table(out: StepOutputs, labels: torch.Tensor, indices: torch.Tensor, class_names,
                      paths: list[str] | None) -> pd.DataFrame:
    """The per-image table (predictions.csv): identity and label, then four columns per step."""
    n = len(labels)
    columns: dict[str, object] = {
        "index": indices.numpy(),
        "path": paths if paths is not None else [""] * n,
        "label": labels.numpy(),
        "label_name": [class_names[i] for i in labels.tolist()],
        "halt_step": (pd.Series(halting_steps(out.halt).numpy()) if out.halt is not None
                      else pd.Series([None] * n, dtype="Int64")),
    }
    for s in range(out.steps):
        columns[f"pred_{s + 1}"] = out.pred[s].numpy()
        columns[f"conf_{s + 1}"] = out.conf[s].numpy()
        columns[f"prob_true_{s + 1}"] = out.prob_true[s].numpy()
        columns[f"halt_{s + 1}"] = out.halt[s].numpy() if out.halt is not None else [None] * n
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- the model's parts

def class_directions(model: torch.nn.Module) -> torch.Tensor | None:
    """[C, D]: the direction in y space that raises each class's logit most; None for a baseline.

    The head reads LayerNorm(y) @ W.T; through the LayerNorm's gain g and its removal of
    the mean, class c's direction in y is g * W_c with its mean removed (the scale that the
    LayerNorm also divides by is left out: only directions are meaningful). Without that norm
    (``head_norm=False``, the paper's code's variant) the head reads y itself: the direction is W_c.
    """
    if not model.config.recursive:
        return None
    if not model.config.head_norm:
        return model.head.weight.detach().clone()
    d = model.head.weight.detach() * model.head_norm.weight.detach()
    return d - d.mean(-1, keepdim=True)


# Top-level module names, in words; a name not listed is shown as it is.
PARTS = {"tokenizer": "tokenizer", "pos": "tokenizer", "block": "shared block f", "blocks": "transformer layers",
         "y_init": "initial states y0, z0", "z_init": "initial states y0, z0", "type_embed": "initial states y0, z0",
         "cls": "class token", "head": "heads", "head_norm": "heads", "halt_head": "heads", "fc": "heads",
         "stem": "convolutions", "stages": "convolutions"}


def parameters_by_part(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts per part of the model, named in words (tokenizer, shared block f, heads, ...)."""
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        part = PARTS.get(name.split(".")[0], name.split(".")[0])
        parts[part] = parts.get(part, 0) + p.numel()
    return parts
