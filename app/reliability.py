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
