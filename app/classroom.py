"""What a teacher needs from the data (no Streamlit here): which gallery images show recursion at work,
and one sentence per step saying what changed.

Demo picks come from the focus model's ``predictions.csv``. The built-in gallery holds CIFAR-10 test
images under the name ``<class>_<NNNN>.jpg``, the same files as the test split's
``test/<class>/<NNNN>.jpg`` (byte for byte), so each gallery image has its row there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_GROWTH = 0.05        # the true class's probability must grow by at least this to be a pick


def dataset_path(gallery_file: str) -> str:
    """'cat_0003.jpg' -> 'test/cat/0003.jpg' (the row of the same image in predictions.csv)."""
    stem, _, suffix = gallery_file.rpartition(".")
    label, _, number = stem.rpartition("_")
    return f"test/{label}/{number}.{suffix}"


def demo_picks(predictions: pd.DataFrame, gallery_files, last: int, limit: int = 8) -> dict[str, str]:
    """Gallery file -> why it is worth showing, best first: answers that change over steps 1..``last``
    (those recursion fixes first), then the largest growth of the true class's probability."""
    last = min(last, sum(1 for c in predictions.columns if c.startswith("pred_")))
    rows = predictions.set_index("path")
    scored = []
    for file in gallery_files:
        path = dataset_path(file)
        if path not in rows.index:
            continue
        row = rows.loc[path]
        answers = [int(row[f"pred_{s}"]) for s in range(1, last + 1)]
        changes = sum(a != b for a, b in zip(answers, answers[1:]))
        fixed = answers[0] != row["label"] and answers[-1] == row["label"]
        growth = float(row[f"prob_true_{last}"] - row["prob_true_1"])
        if changes or growth >= MIN_GROWTH:
            why = ("recursion fixes the answer" if fixed else "the answer changes" if changes
                   else f"the right class grows by {growth:.0%}")
            scored.append(((fixed, changes > 0, growth), file, why))
    scored.sort(key=lambda s: s[0], reverse=True)
    return {file: why for _, file, why in scored[:limit]}


def narrate(probs: np.ndarray, step: int, class_names, halt: np.ndarray | None = None,
            threshold: float = 0.5) -> str:
    """One sentence on what changed at ``step`` (1-based) against the step before; ``probs`` [S, C]."""
    now = probs[step - 1]
    top = int(now.argmax())
    name, p = class_names[top], float(now[top])
    if step == 1:
        sentence = f"Step 1: the first guess is {name}, at {p:.0%}."
    else:
        before = probs[step - 2]
        old = int(before.argmax())
        if old != top:
            sentence = (f"Step {step}: the model changes its mind, from {class_names[old]} to {name} "
                        f"({name} {p:.0%}, {class_names[old]} {float(now[old]):.0%}).")
        else:
            delta = p - float(before[top])
            trend = ("grows more sure" if delta > 0.005 else "grows less sure" if delta < -0.005
                     else "barely changes")
            sentence = f"Step {step}: still {name}; the model {trend} ({float(before[top]):.0%} → {p:.0%})."
    if halt is not None and halt[step - 1] >= threshold and (step == 1 or halt[step - 2] < threshold):
        sentence += f" The halting output reaches {threshold} here: it would stop now."
    return sentence
