"""How far the halting head's output can be trusted, measured on an evaluated test set (no Streamlit).

The halting head outputs a number in [0, 1] trained to predict "my current answer is right". It is
not a probability by construction, so the app names it "halting output" and says what it was worth:
among the test images whose output fell in the same tenth (0.7-0.8, say) at the same step, how many
answers were actually right. Read from ``predictions.csv`` (``halt_S`` and ``pred_S`` columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitrm import analysis

BINS = 10


@dataclass(frozen=True)
class Reliability:
    low: float            # the bin [low, high) the output fell in
    high: float
    images: int           # test images whose output fell in it at this step
    right: float          # share of them whose answer at this step was right


def bin_of(value: float) -> int:
    return int(min(max(value, 0.0), 1.0 - 1e-9) * BINS)


def at(predictions: pd.DataFrame, step: int, value: float) -> Reliability | None:
    """What the output ``value`` at ``step`` was worth on the test set; None without the columns."""
    if f"halt_{step}" not in predictions or f"pred_{step}" not in predictions:
        return None
    halt = predictions[f"halt_{step}"].to_numpy(dtype=float)
    right = predictions[f"pred_{step}"].to_numpy() == predictions["label"].to_numpy()
    b = bin_of(value)
    same = np.clip((halt * BINS).astype(int), 0, BINS - 1) == b
    return Reliability(low=b / BINS, high=(b + 1) / BINS, images=int(same.sum()),
                       right=float(right[same].mean()) if same.any() else float("nan"))


# --------------------------------------------------------------------------- the answer's confidence, per step

def calibration_bins(predictions: pd.DataFrame, step: int, bins: int | None = None) -> pd.DataFrame:
    """The reliability diagram of the answer at ``step``: one row per equal-width confidence bin (lo, hi], as
    ``vitrm.analysis.expected_calibration_error`` bins them (ECE_BINS of them), with the images in it, their mean
    confidence and the share answered right (NaN for an empty bin). The ECE is the image-weighted mean of
    |accuracy - confidence| over these rows."""
    bins = bins or analysis.ECE_BINS
    conf = predictions[f"conf_{step}"].to_numpy(dtype=float)
    right = predictions[f"pred_{step}"].to_numpy() == predictions["label"].to_numpy()
    index = np.clip(np.ceil(conf * bins).astype(int), 1, bins) - 1
    rows = []
    for b in range(bins):
        members = index == b
        rows.append({"low": b / bins, "high": (b + 1) / bins, "images": int(members.sum()),
                     "confidence": float(conf[members].mean()) if members.any() else float("nan"),
                     "accuracy": float(right[members].mean()) if members.any() else float("nan")})
    return pd.DataFrame(rows)


def ece_of(diagram: pd.DataFrame) -> float:
    """The expected calibration error that ``diagram`` (``calibration_bins``) adds up to."""
    filled = diagram[diagram["images"] > 0]
    return float((filled["images"] * (filled["accuracy"] - filled["confidence"]).abs()).sum() / filled["images"].sum())
