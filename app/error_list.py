"""The browsable per-image table of a test set: rows, filters, order and pages (no Streamlit here).

Built from ``predictions.csv`` (written by ``python -m vitrm evaluate``): one row per evaluated
image, with its answers at step 1, at the selected step and at N, the confidence of the answer at
the selected step, how far the true class's probability moved from step 1 to N, and the step at
which the halting head would stop. The view (``app.views.error_table``) draws widgets over these
functions; the filters are a plain dataclass, so a confusion-matrix click can set them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ANY = "any"
CORRECTNESS = (ANY, "right", "wrong")
RECURSION = {ANY: "any", "fixed": "fixed by recursion (wrong at step 1, right at N)",
             "broken": "broken by recursion (right at step 1, wrong at N)",
             "changed": "answer changes between step 1 and N", "unchanged": "same answer at step 1 and N"}
# Sortable columns, named as the table shows them.
SORTABLE = ("confidence", "change", "halting step", "true class", "image")
PAGE_SIZES = (25, 50, 100)


@dataclass
class Filters:
    true: list[str] = field(default_factory=list)        # empty: every class
    predicted: list[str] = field(default_factory=list)   # the answer at the selected step
    correctness: str = ANY                               # right / wrong at the selected step
    recursion: str = ANY                                 # a key of RECURSION
    confidence: tuple[float, float] = (0.0, 1.0)         # of the answer at the selected step
    images: tuple[int, ...] | None = None                # image indices chosen elsewhere (the projector); None: all


def steps_in(predictions: pd.DataFrame) -> int:
    return sum(1 for c in predictions.columns if c.startswith("pred_"))


def answer_columns(step: int, n: int) -> dict[str, int]:
    """The answer columns, name -> step: step 1, the selected ``step`` and N (``n``), each once: the selected
    step at 1 or at N is that column, not a copy beside it."""
    columns = {f"step 1{' (N)' if n == 1 else ''}": 1}
    if step not in (1, n):
        columns[f"step {step}"] = step
    if n > 1:
        columns[f"step {n} (N)"] = n
    return columns


def step_column(step: int, n: int) -> str:
    """The name of the column that holds the answers at ``step``."""
    return next(name for name, s in answer_columns(step, n).items() if s == step)


def build(predictions: pd.DataFrame, class_names, step: int, n: int) -> pd.DataFrame:
    """One row per image, in dataset order. ``step`` is the selected step, ``n`` the last one (N)."""
    names = pd.Series(list(class_names))

    def answer(s: int) -> pd.Series:
        return names.reindex(predictions[f"pred_{s}"].to_numpy()).reset_index(drop=True)

    halt = predictions["halt_step"] if "halt_step" in predictions else pd.Series([pd.NA] * len(predictions))
    label = predictions["label"].to_numpy()
    table = pd.DataFrame({
        "index": predictions["index"].to_numpy(),
        "path": predictions["path"].astype(str).to_numpy(),
        "true class": names.reindex(label).to_numpy(),
        **{name: answer(s).to_numpy() for name, s in answer_columns(step, n).items()},
        "confidence": predictions[f"conf_{step}"].to_numpy(dtype=float),
        "change": (predictions[f"prob_true_{n}"] - predictions["prob_true_1"]).to_numpy(dtype=float),
        "halting step": pd.to_numeric(halt, errors="coerce").to_numpy(),
    })
    # Hidden helpers for the filters.
    table["_right"] = predictions[f"pred_{step}"].to_numpy() == label
    first, last = predictions["pred_1"].to_numpy(), predictions[f"pred_{n}"].to_numpy()
    table["_fixed"] = (first != label) & (last == label)
    table["_broken"] = (first == label) & (last != label)
    table["_changed"] = first != last
    table["_predicted"] = table[step_column(step, n)]
    return table


def apply(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    keep = pd.Series(True, index=table.index)
    if filters.true:
        keep &= table["true class"].isin(filters.true)
    if filters.predicted:
        keep &= table["_predicted"].isin(filters.predicted)
    if filters.correctness != ANY:
        keep &= table["_right"] == (filters.correctness == "right")
    if filters.recursion in ("fixed", "broken", "changed"):
        keep &= table[f"_{filters.recursion}"]
    elif filters.recursion == "unchanged":
        keep &= ~table["_changed"]
    lo, hi = filters.confidence
    keep &= table["confidence"].between(lo, hi)
    if filters.images is not None:
        keep &= table["index"].isin(filters.images)
    return table[keep]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: object) -> object:
    """A text cell a spreadsheet would run as a formula ("=HYPERLINK(...)" as a class name), quoted with "'"."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def to_csv(table: pd.DataFrame) -> bytes:
    """The rows as a person reads them (``shown``, with the image's index and path first), as UTF-8 CSV; text
    from outside (class names, paths) cannot start a spreadsheet formula."""
    columns = ["index", "path"] + list(shown(table).columns)
    out = table[columns].copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_inert)
    return out.to_csv(index=False).encode("utf-8")


def order(table: pd.DataFrame, column: str, descending: bool) -> pd.DataFrame:
    """Stable sort by a shown column ("image" is dataset order); ties keep dataset order."""
    key = "index" if column == "image" else column
    return table.sort_values(key, ascending=not descending, kind="stable", na_position="last")


def pages(rows: int, size: int) -> int:
    return max(1, -(-rows // size))


def page(table: pd.DataFrame, number: int, size: int) -> pd.DataFrame:
    """Page ``number`` (1-based) of ``size`` rows; a number past the end gives the last page."""
    number = min(max(1, number), pages(len(table), size))
    return table.iloc[(number - 1) * size: number * size]


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a person reads (the helpers dropped)."""
    return table[[c for c in table.columns if not c.startswith("_") and c not in ("path", "index")]]
