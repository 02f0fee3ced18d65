"""Plain tables and facts from checkpoint files and per-image predictions (no Streamlit).

The model card and the dataset-analysis views read these; the formats are those written by
``python -m vitrm evaluate`` (metrics.json and predictions.csv).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitrm import ARCH_NAMES, data_description

from .checkpoints import CheckpointFiles


def training_data(files: CheckpointFiles) -> str:
    """What the model was trained (or evaluated) on, with the JPEG caveat where it applies."""
    if files.train_config and files.train_config.get("data"):
        return data_description(str(files.train_config["data"]))
    if files.metrics and files.metrics.get("data"):
        return data_description(str(files.metrics["data"]))
    return "unknown (no train_config.json or metrics.json beside the weights)"


def accuracy_facts(config, metrics: dict | None) -> dict:
    """Top-1 at the trained step count and where it peaks over N; empty without metrics."""
    if not metrics or not metrics.get("top1_by_step"):
        return {}
    top1 = metrics["top1_by_step"]
    trained = min(config.trained_steps, len(top1))
    best = int(np.argmax(top1))
    return {"trained_n": trained, "top1_trained": top1[trained - 1], "peak_n": best + 1,
            "top1_peak": top1[best], "steps_evaluated": len(top1),
            "num_images": metrics.get("num_images"), "data_note": metrics.get("data_note", "")}


def training_seconds(log: pd.DataFrame | None) -> float | None:
    """Wall time of the training that the log records, or None when it does not record it.

    ``wall_seconds`` counts up within one run (resumes included), so each run's last value is its time; a
    history of stages and averaged runs (``stage`` and ``run`` columns, app.checkpoints) sums its runs'
    times, as the model card does (runs averaged together may have trained at the same time)."""
    if log is None or log.empty or "wall_seconds" not in log:
        return None
    runs = [log] if not {"stage", "run"} <= set(log.columns) else [
        part for _, part in log.groupby(["stage", "run"], sort=False)]
    times = [part["wall_seconds"].max() for part in runs]
    if any(pd.isna(t) or t < 0 for t in times):
        return None
    return float(sum(times))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def count(n: int, noun: str, number: bool = True) -> str:
    """"1 layer", "2 layers" (never "1 layers"); without ``number``, for "time": "once", "twice", "3 times"."""
    if not number and noun == "time":
        return {1: "once", 2: "twice"}.get(n, f"{n} times")
    return f"{n} {noun}" + ("" if n == 1 else "s")


def model_card(files: CheckpointFiles, parameters: int) -> dict:
    cfg = files.config
    card = {"name": files.name, "architecture": ARCH_NAMES.get(cfg.arch, cfg.arch), "arch": cfg.arch,
            "recursive": cfg.recursive, "parameters": parameters, "effective_depth": cfg.effective_depth,
            "trained_steps": cfg.trained_steps if cfg.recursive else 1,
            "data": training_data(files), "epochs_logged": None if files.train_log is None else len(files.train_log),
            "training_seconds": training_seconds(files.train_log)}
    if cfg.recursive:
        card["block"] = (f"k={count(cfg.layers, 'layer')}, width {cfg.dim}, {count(cfg.heads, 'head')}; "
                         f"n={count(cfg.latent_updates, 'latent update')} + 1 answer update per step; "
                         f"{cfg.num_tokens} tokens "
                         f"({cfg.tokenizer} tokenizer); combine '{cfg.combine}'")
    card.update(accuracy_facts(cfg, files.metrics))
    return card


def mflops(flops: int | None) -> str:
    """Compute per image as the model card and the model tables show it (``flops_per_image``: app.cache's
    count at the trained N); "unknown" when torch's counter could not run the model."""
    return "unknown" if flops is None else f"{flops / 1e6:,.1f}"


def budget_label(card: dict) -> str:
    """A model's name with its training budget, so that curves trained for 2 and 26 epochs are
    not read as a like-for-like comparison."""
    epochs = card.get("epochs_logged")
    return card["name"] if epochs is None else f"{card['name']} ({epochs} epochs)"


def comparison_table(cards: list[dict]) -> pd.DataFrame:
    """One row per model card. The compute column is there when a card carries ``flops_per_image`` (counted
    where the table is shown, as it takes a moment: app.cache.flops_per_image); None in it is "unknown"."""
    rows = []
    for c in cards:
        # A CNN has no transformer layers: its "effective depth" is not a number to compare.
        rows.append({"model": c["name"], "architecture": c["arch"], "parameters": c["parameters"],
                     **({"MFLOPs per image": mflops(c["flops_per_image"])} if "flops_per_image" in c else {}),
                     "epochs": "no log" if c.get("epochs_logged") is None else str(c["epochs_logged"]),
                     "training time": duration(c.get("training_seconds")),
                     "effective depth": str(c["effective_depth"]) if c["arch"] != "cnn" else "n/a (CNN)",
                     "trained N": c["trained_steps"],
                     "top-1 at trained N": c.get("top1_trained"),
                     "peak top-1 (at N)": (f"{100 * c['top1_peak']:.2f}% (N={c['peak_n']})"
                                           if "top1_peak" in c else None)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- per-image table

def step_count(predictions: pd.DataFrame) -> int:
    return sum(1 for c in predictions.columns if c.startswith("pred_"))


def gallery_rows(predictions: pd.DataFrame, kind: str, n: int) -> pd.DataFrame:
    """Images that are misclassified at step n, fixed by recursion, or broken by it.

    fixed: wrong at step 1, right at step n. broken: right at step 1, wrong at step n.
    """
    labels = predictions["label"]
    first, at_n = predictions["pred_1"] == labels, predictions[f"pred_{n}"] == labels
    mask = {"misclassified": ~at_n, "fixed": ~first & at_n, "broken": first & ~at_n}[kind]
    return predictions[mask]

