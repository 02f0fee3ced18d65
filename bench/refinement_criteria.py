"""Issue 11's bar for a checkpoint whose steps refine, read from its metrics.json, one line per figure.

    .venv/bin/python -m bench.refinement_criteria checkpoints/vitrm-cifar10-refine

Reads only what `python -m vitrm evaluate --max-steps 2N` recorded (top-1 by step, the parameter count,
the halting analysis), so every line can be rechecked by hand from that file. Prints a table: figure,
measured, bar, met. Exits 0 whether or not the bar is met: it reports, it does not judge a run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import vitrm

MIN_GAIN = 0.08              # top-1 at N at least 8 points above top-1 at step 1
MAX_STEP_SHARE = 0.60        # no single step gives more than 60% of that gain
MIN_TOP1 = 0.80              # top-1 at N
STRETCH_TOP1 = 0.85          # also replaces the flagship
MAX_PARAMETERS = 1_000_000
MAX_STEP_DROP = 0.002        # no step before N below the step before it by more than 0.2 points
MAX_DROP_AT_2N = 0.01        # top-1 at 2N no more than 1 point below top-1 at N


@dataclass(frozen=True)
class Check:
    figure: str
    measured: str
    bar: str
    met: bool | None         # None: reported, no bar


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def checks(metrics: dict) -> list[Check]:
    """Each of issue 11's figures for a recursive model's metrics.json (``top1_by_step`` over 1..2N)."""
    top1, n = metrics["top1_by_step"], metrics["trained_steps"]
    if len(top1) < 2 * n:
        raise ValueError(f"metrics.json covers {len(top1)} steps; evaluate with --max-steps {2 * n} (2N)")
    gain = top1[n - 1] - top1[0]
    step_gains = [top1[s] - top1[s - 1] for s in range(1, n)]
    largest = max(step_gains)
    drops = [-g for g in step_gains]
    out = [
        Check(f"gain from step 1 to N={n}", f"{100 * gain:+.2f} points ({_pct(top1[0])} -> {_pct(top1[n - 1])})",
              f">= +{100 * MIN_GAIN:.0f} points", gain >= MIN_GAIN - 1e-12),
        Check("largest single step's share of that gain",
              "n/a (no gain)" if gain <= 0 else
              f"{largest / gain:.0%} (step {step_gains.index(largest) + 1} -> {step_gains.index(largest) + 2})",
              f"<= {MAX_STEP_SHARE:.0%}", gain > 0 and largest <= MAX_STEP_SHARE * gain + 1e-12),
        Check(f"top-1 at N={n}", _pct(top1[n - 1]), f">= {_pct(MIN_TOP1)}", top1[n - 1] >= MIN_TOP1 - 1e-12),
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
    args = parser.parse_args()
    metrics = vitrm.read_metrics(args.checkpoint)
    print(f"{args.checkpoint}: {metrics['num_images']:,} images of {metrics['data']} ({metrics['split']} split)")
    print("| figure | measured | bar | met |\n|---|---|---|---|")
    for c in checks(metrics):
        met = "-" if c.met is None else ("yes" if c.met else "**no**")
        print(f"| {c.figure} | {c.measured} | {c.bar} | {met} |")


if __name__ == "__main__":
    main()
