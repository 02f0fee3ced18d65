"""Two models' answers on the same images, side by side: where they disagree, per class and per cell.

    from vitrm import compare_predictions, read_predictions, read_config
    a, b = read_predictions("checkpoints/vitrm-cifar10"), read_predictions("checkpoints/cnn-cifar10")
    result = compare_predictions(a, b, classes_a=read_config(...).class_names, classes_b=...,
                                 step_a=8, step_b=1)
    result.counts                   # {"a_right_b_wrong": ..., "b_right_a_wrong": ..., ...}
    result.disagreements            # one row per image where the two answers differ, with its kind
    result.per_class                # accuracy of each per class, and B - A
    result.confusion_difference     # [C, C] counts of B minus counts of A

The inputs are per-image tables as ``python -m vitrm evaluate`` writes them (predictions.csv: an
``index`` (the image's position in its split), ``path``, ``label`` and ``pred_1 .. pred_S``). Each
model is read at one step of its own (``step_a``, ``step_b``); a baseline has only step 1.
The two tables are joined on ``index``. They must cover exactly the same images, with the same
true labels (and the same file, where both name one), over the same classes in the same order;
anything else is a :class:`ComparisonError` that says what differs, never a silent partial join.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import UserError

__all__ = ["KINDS", "DISAGREEMENTS", "Comparison", "ComparisonError", "compare_predictions"]

# Every image falls in exactly one kind; the first three are the disagreements.
KINDS = {
    "a_right_b_wrong": "A right, B wrong",
    "b_right_a_wrong": "B right, A wrong",
    "both_wrong_differently": "both wrong, different answers",
    "both_right": "both right",
    "both_wrong_same": "both wrong, same answer",
}
DISAGREEMENTS = ("a_right_b_wrong", "b_right_a_wrong", "both_wrong_differently")


class ComparisonError(UserError, ValueError):
    """The two tables cannot be compared image for image; the message says what differs."""


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_predictions`.

    ``images``: one row per image, in ``index`` order: ``index``, ``path``, ``label``,
    ``label_name``, ``pred_a``, ``pred_b`` (class indices), ``answer_a``, ``answer_b`` (names),
    ``conf_a``, ``conf_b`` (confidence of each answer, NaN where the table has none) and ``kind``
    (a key of :data:`KINDS`).
    ``per_class``: indexed by class name: ``images``, ``top1_a``, ``top1_b`` and ``difference``
    (``top1_b - top1_a``); NaN for a class without images.
    ``confusion_a``, ``confusion_b``: [C, C] counts, rows the true class, columns the answer.
    """

    images: pd.DataFrame
    per_class: pd.DataFrame
    confusion_a: np.ndarray
    confusion_b: np.ndarray
    class_names: tuple[str, ...]
    step_a: int
    step_b: int

    @property
    def confusion_difference(self) -> np.ndarray:
        """B's confusion counts minus A's: positive off the diagonal where B makes that mistake more often."""
        return self.confusion_b - self.confusion_a

    @property
    def counts(self) -> dict[str, int]:
        """Images of each kind (every key of :data:`KINDS`, zero included)."""
        found = self.images["kind"].value_counts()
        return {kind: int(found.get(kind, 0)) for kind in KINDS}

    @property
    def disagreements(self) -> pd.DataFrame:
        """The rows whose two answers differ (the three kinds of :data:`DISAGREEMENTS`)."""
        return self.images[self.images["kind"].isin(DISAGREEMENTS)]

    def of_kind(self, kind: str) -> pd.DataFrame:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
        return self.images[self.images["kind"] == kind]

    @property
    def a_right_b_wrong(self) -> pd.DataFrame:
        return self.of_kind("a_right_b_wrong")

    @property
    def b_right_a_wrong(self) -> pd.DataFrame:
        return self.of_kind("b_right_a_wrong")

    @property
    def both_wrong_differently(self) -> pd.DataFrame:
        return self.of_kind("both_wrong_differently")

    @property
    def top1(self) -> tuple[float, float]:
        """(A's, B's) accuracy over the compared images."""
        right_a = self.images["pred_a"] == self.images["label"]
        right_b = self.images["pred_b"] == self.images["label"]
        return float(right_a.mean()), float(right_b.mean())


def _side(table: pd.DataFrame, step: int, name: str, num_classes: int) -> pd.DataFrame:
    """One table's identity columns and its answer at ``step``, checked."""
    if not isinstance(table, pd.DataFrame):
        raise ComparisonError(f"{name}: expected a per-image table (a pandas DataFrame), got {type(table).__name__}")
    missing = [c for c in ("index", "label") if c not in table.columns]
    steps = sum(1 for c in table.columns if str(c).startswith("pred_"))
    if missing:
        raise ComparisonError(f"{name}: the table has no {' or '.join(missing)} column")
    if not isinstance(step, (int, np.integer)) or not 1 <= step <= steps or f"pred_{step}" not in table.columns:
        raise ComparisonError(f"{name}: step {step} is not in the table, which holds steps 1..{steps}")
    if table.empty:
        raise ComparisonError(f"{name}: the table holds no images")
    index = table["index"]
    if index.duplicated().any():
        raise ComparisonError(f"{name}: image index {int(index[index.duplicated()].iloc[0])} appears twice")
    for col in ("label", f"pred_{step}"):
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~((values >= 0) & (values < num_classes) & (values == np.round(values))))
        if len(bad):
            raise ComparisonError(f"{name}: {col} of image {table['index'].iloc[bad[0]]} is "
                                  f"{table[col].iloc[bad[0]]}, not a class index 0..{num_classes - 1}")
    conf = (table[f"conf_{step}"].to_numpy(dtype=float) if f"conf_{step}" in table.columns
            else np.full(len(table), np.nan))
    path = table["path"].fillna("").astype(str) if "path" in table.columns else pd.Series([""] * len(table))
    return pd.DataFrame({"index": index.to_numpy(dtype=np.int64), "path": path.to_numpy(),
                         "label": table["label"].to_numpy(dtype=np.int64),
                         "pred": table[f"pred_{step}"].to_numpy(dtype=np.int64), "conf": conf})


def _listed(values, limit: int = 3) -> str:
    values = sorted(values)
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(str(v) for v in values[:limit]) + more


def compare_predictions(a: pd.DataFrame, b: pd.DataFrame, *, classes_a: Sequence[str], classes_b: Sequence[str],
                        step_a: int, step_b: int) -> Comparison:
    """Compare model A's answers at ``step_a`` with model B's at ``step_b`` on the same images.

    Raises :class:`ComparisonError` when the class lists differ, when the tables do not hold exactly the
    same image indices, or when an image has different true labels (or different files) in the two.
    """
    classes_a, classes_b = [str(c) for c in classes_a], [str(c) for c in classes_b]
    if classes_a != classes_b:
        raise ComparisonError(f"the models predict different classes (A: {_listed(classes_a, 10)}; "
                              f"B: {_listed(classes_b, 10)})" if sorted(classes_a) != sorted(classes_b) else
                              "the models list the same classes in a different order, so their class "
                              "indices mean different things")
    if not classes_a:
        raise ComparisonError("the models have no classes")
    num_classes = len(classes_a)
    side_a, side_b = _side(a, step_a, "A", num_classes), _side(b, step_b, "B", num_classes)
    only_a = set(side_a["index"]) - set(side_b["index"])
    only_b = set(side_b["index"]) - set(side_a["index"])
    if only_a or only_b:
        raise ComparisonError(
            f"the tables do not cover the same images: A has {len(side_a):,}, B {len(side_b):,}, "
            f"{len(side_a) - len(only_a):,} in common"
            + (f"; only in A: {_listed(only_a)}" if only_a else "")
            + (f"; only in B: {_listed(only_b)}" if only_b else "")
            + ". Evaluate both on the same split (python -m vitrm evaluate with the same --data and --limit).")
    joined = side_a.merge(side_b, on="index", suffixes=("_a", "_b")).sort_values("index", kind="stable")
    joined = joined.reset_index(drop=True)
    differ = np.flatnonzero(joined["label_a"].to_numpy() != joined["label_b"].to_numpy())
    if len(differ):
        row = joined.iloc[differ[0]]
        raise ComparisonError(f"image {row['index']} has true class {classes_a[row['label_a']]} in A but "
                              f"{classes_a[row['label_b']]} in B ({len(differ):,} images differ): not the same data")
    pa, pb = joined["path_a"].to_numpy(), joined["path_b"].to_numpy()
    differ = np.flatnonzero((pa != "") & (pb != "") & (pa != pb))
    if len(differ):
        row = joined.iloc[differ[0]]
        raise ComparisonError(f"image {row['index']} is {row['path_a']} in A but {row['path_b']} in B "
                              f"({len(differ):,} images differ): not the same data")

    label = joined["label_a"].to_numpy()
    pred_a, pred_b = joined["pred_a"].to_numpy(), joined["pred_b"].to_numpy()
    right_a, right_b = pred_a == label, pred_b == label
    kind = np.select([right_a & ~right_b, right_b & ~right_a, ~right_a & ~right_b & (pred_a != pred_b),
                      right_a & right_b],
                     ["a_right_b_wrong", "b_right_a_wrong", "both_wrong_differently", "both_right"],
                     default="both_wrong_same")
    names = np.array(classes_a, dtype=object)
    images = pd.DataFrame({"index": joined["index"], "path": np.where(pa != "", pa, pb), "label": label,
                           "label_name": names[label], "pred_a": pred_a, "pred_b": pred_b,
                           "answer_a": names[pred_a], "answer_b": names[pred_b],
                           "conf_a": joined["conf_a"], "conf_b": joined["conf_b"], "kind": kind})

    def confusion(pred: np.ndarray) -> np.ndarray:
        return np.bincount(label * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)

    confusion_a, confusion_b = confusion(pred_a), confusion(pred_b)
    totals = confusion_a.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        top1_a = np.where(totals > 0, np.diag(confusion_a) / totals, np.nan)
        top1_b = np.where(totals > 0, np.diag(confusion_b) / totals, np.nan)
    per_class = pd.DataFrame({"images": totals, "top1_a": top1_a, "top1_b": top1_b, "difference": top1_b - top1_a},
                             index=pd.Index(classes_a, name="class"))
    return Comparison(images=images, per_class=per_class, confusion_a=confusion_a, confusion_b=confusion_b,
                      class_names=tuple(classes_a), step_a=int(step_a), step_b=int(step_b))
