"""A refining checkpoint's figures against an issue's bar, read from what evaluate recorded, one line each.

    .venv/bin/python -m bench.refinement_criteria checkpoints/vitrm-cifar10-refine            # issue 27's bar
    .venv/bin/python -m bench.refinement_criteria checkpoints/compare60-vitrm-n8 --bar issue11

Reads only what `python -m vitrm evaluate --max-steps 2N` wrote (metrics.json: top-1 by step, the parameter
count, the halting analysis; predictions.csv.gz: each image's answer by step), so every line can be rechecked
by hand from those files. Prints a table: figure, measured, bar, met. Exits 0 whether or not the bar is met:
it reports, it does not judge a run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pandas as pd

import vitrm

MAX_STEP_SHARE = 0.60        # no single step gives more than 60% of the gain from step 1 to N
MAX_PARAMETERS = 1_000_000
MAX_STEP_DROP = 0.002        # no step before N below the step before it by more than 0.2 points
MAX_DROP_AT_2N = 0.01        # top-1 at 2N no more than 1 point below top-1 at N
STRETCH_TOP1 = 0.85          # also replaces the flagship


@dataclass(frozen=True)
class Bar:
    """What differs between the issues that asked for a refining model; the rest is shared (above)."""
    min_gain: float          # top-1 at N at least this far above top-1 at step 1
    min_top1: float          # top-1 at N
    min_changed: float | None = None   # share of images whose answer differs between step 1 and N


BARS = {
    "issue11": Bar(min_gain=0.08, min_top1=0.80),
    "issue27": Bar(min_gain=0.05, min_top1=0.82, min_changed=0.12),
}


@dataclass(frozen=True)
class Check:
    figure: str
    measured: str
    bar: str
    met: bool | None         # None: reported, no bar


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def answer_changes(predictions: pd.DataFrame, n: int) -> tuple[float, int, int]:
    """Share of images whose answer at step N differs from step 1, and how many were fixed and broken."""
    labels, first, last = predictions["label"], predictions["pred_1"], predictions[f"pred_{n}"]
    changed = float((first != last).mean())
    fixed = int(((first != labels) & (last == labels)).sum())
    broken = int(((first == labels) & (last != labels)).sum())
    return changed, fixed, broken


def checks(metrics: dict, bar: Bar = BARS["issue27"], predictions: pd.DataFrame | None = None) -> list[Check]:
    """Each figure of ``bar`` for a recursive model's metrics.json (``top1_by_step`` over 1..2N) and, where
    the bar counts changed answers, its per-image table."""
    top1, n = metrics["top1_by_step"], metrics["trained_steps"]
    if len(top1) < 2 * n:
        raise ValueError(f"metrics.json covers {len(top1)} steps; evaluate with --max-steps {2 * n} (2N)")
    gain = top1[n - 1] - top1[0]
    step_gains = [top1[s] - top1[s - 1] for s in range(1, n)]
    largest = max(step_gains)
    drops = [-g for g in step_gains]
    out = [
        Check(f"gain from step 1 to N={n}", f"{100 * gain:+.2f} points ({_pct(top1[0])} -> {_pct(top1[n - 1])})",
              f">= +{100 * bar.min_gain:.0f} points", gain >= bar.min_gain - 1e-12),
        Check("largest single step's share of that gain",
              "n/a (no gain)" if gain <= 0 else
              f"{largest / gain:.0%} (step {step_gains.index(largest) + 1} -> {step_gains.index(largest) + 2})",
              f"<= {MAX_STEP_SHARE:.0%}", gain > 0 and largest <= MAX_STEP_SHARE * gain + 1e-12),
        Check(f"top-1 at N={n}", _pct(top1[n - 1]), f">= {_pct(bar.min_top1)}", top1[n - 1] >= bar.min_top1 - 1e-12),
        Check("parameters", f"{metrics['parameters']:,}", f"<= {MAX_PARAMETERS:,}",
              metrics["parameters"] <= MAX_PARAMETERS),
        Check(f"top-1 at N={n} (stretch: replaces the flagship)", _pct(top1[n - 1]), f">= {_pct(STRETCH_TOP1)}",
              top1[n - 1] >= STRETCH_TOP1 - 1e-12),
        Check(f"largest drop from one step to the next before N={n}", f"{100 * max(0.0, *drops):.2f} points",
              f"<= {100 * MAX_STEP_DROP:.1f} points", max(drops) <= MAX_STEP_DROP + 1e-12),
        Check(f"top-1 at 2N={2 * n} against N={n}", f"{100 * (top1[2 * n - 1] - top1[n - 1]):+.2f} points "
              f"({_pct(top1[2 * n - 1])})", f">= -{100 * MAX_DROP_AT_2N:.0f} point",
              top1[2 * n - 1] - top1[n - 1] >= -MAX_DROP_AT_2N - 1e-12),
    ]
    if bar.min_changed is not None:
        if predictions is None:
            raise ValueError("this bar counts changed answers: it needs the checkpoint's predictions.csv.gz")
        changed, fixed, broken = answer_changes(predictions, n)
        out += [
            Check(f"images whose answer changes between step 1 and N={n}",
                  f"{changed:.2%} ({round(changed * len(predictions)):,} of {len(predictions):,})",
                  f">= {bar.min_changed:.0%}", changed >= bar.min_changed - 1e-12),
            Check("fixed (wrong at step 1, right at N) against broken (right, then wrong)",
                  f"{fixed:,} fixed, {broken:,} broken", "more fixed than broken", fixed > broken),
        ]
    halting = metrics.get("halting")
    if halting:
        out.append(Check(f"halting at {halting['threshold']}: top-1, mean steps",
                         f"{_pct(halting['adaptive_top1'])}, {halting['adaptive_mean_steps']:.2f} of "
                         f"{len(top1)} steps", "reported", None))
        budget = halting.get("budget")
        out.append(Check("fewest mean steps within 0.5 points of top-1 at N",
                         "none: no threshold stays within 0.5 points" if not budget else
                         f"{budget['mean_steps']:.2f} steps at threshold {budget['threshold']} "
                         f"({_pct(budget['top1'])})", "reported", None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--bar", choices=sorted(BARS), default="issue27",
                        help="issue11: +8 points and 80%%; issue27 (default): +5 points, 82%%, 12%% of answers change")
    args = parser.parse_args()
    bar = BARS[args.bar]
    metrics = vitrm.read_metrics(args.checkpoint)
    predictions = vitrm.read_predictions(args.checkpoint) if bar.min_changed is not None else None
    print(f"{args.checkpoint}: {metrics['num_images']:,} images of {metrics['data']} ({metrics['split']} split), "
          f"{args.bar}'s bar")
    print("| figure | measured | bar | met |\n|---|---|---|---|")
    for c in checks(metrics, bar, predictions):
        met = "-" if c.met is None else ("yes" if c.met else "**no**")
        print(f"| {c.figure} | {c.measured} | {c.bar} | {met} |")


if __name__ == "__main__":
    main()
