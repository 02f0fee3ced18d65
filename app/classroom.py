"""What a teacher needs from the data (no Streamlit here): which gallery images show recursion at work,
and one sentence per step saying what changed.

Demo picks come from the focus model's ``predictions.csv``. The built-in gallery holds CIFAR-10 test
images under the name ``<class>_<NNNN>.jpg``, the same files as the test split's
``test/<class>/<NNNN>.jpg`` (byte for byte), so each gallery image has its row there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitrm import analysis

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


def percent(p: float) -> str:
    """A probability as classroom mode writes it everywhere (sentence, answer and bars): one decimal."""
    return f"{100 * p:.1f}%"


def narrate(probs: np.ndarray, step: int, class_names, halt: np.ndarray | None = None,
            trained: int | None = None) -> str:
    """One sentence on what changed at ``step`` (1-based) against the step before; ``probs`` [S, C].

    The words follow the numbers as written (``percent``): a change that rounds away "stays", so no sentence
    says "grows more sure (24.0% → 24.0%)". A step past ``trained`` (the step count the model was trained
    with) is named an extra step. Whether the model would stop is ``vitrm.analysis``'s halting rule (the
    first step whose halting output reaches the threshold), applied to ``halt`` [S]: the one owner of it.
    """
    now = probs[step - 1]
    top = int(now.argmax())
    name, p = class_names[top], float(now[top])
    head = f"Step {step}" + (f" (an extra step: trained with {trained})" if trained and step > trained else "")
    if step == 1:
        sentence = f"{head}: the first guess is {name}, at {percent(p)}."
    else:
        before = probs[step - 2]
        old = int(before.argmax())
        if old != top:
            sentence = (f"{head}: the model changes its mind, from {class_names[old]} to {name} "
                        f"({name} {percent(p)}, {class_names[old]} {percent(float(now[old]))}).")
        else:
            was, shown = percent(float(before[top])), percent(p)
            if was == shown:
                sentence = f"{head}: still {name}; the model stays at {shown}."
            else:
                trend = "grows more sure" if float(shown[:-1]) > float(was[:-1]) else "grows less sure"
                sentence = f"{head}: still {name}; the model {trend} ({was} → {shown})."
    if halt is not None and analysis.halting_step(halt) == step:
        sentence += f" Its own 'am I right?' output reaches {analysis.HALT_THRESHOLD} here: it would stop now."
    return sentence
