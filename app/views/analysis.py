"""Dataset analysis: accuracy, calibration and halting over the test set, from metrics.json."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from .. import glossary
from ..text import md, plotly, plotly_all
from . import figures


def _steps(values) -> np.ndarray:
    return np.arange(1, len(values) + 1)


def accuracy_figure(curves: dict[str, dict], baselines: dict[str, float]) -> go.Figure:
    """``curves``: name -> {"top1": [...], "trained": N}; ``baselines``: name -> top-1."""
    fig = go.Figure()
    longest = max([len(c["top1"]) for c in curves.values()] + [1])
    for name, c in curves.items():
        fig.add_trace(go.Scatter(x=_steps(c["top1"]), y=c["top1"], mode="lines+markers", name=plotly(name),
                                 hovertemplate="%{fullData.name}: %{y:.2%} at N=%{x}<extra></extra>"))
        trained = c["trained"]
        if trained <= len(c["top1"]):
            fig.add_trace(go.Scatter(x=[trained], y=[c["top1"][trained - 1]], mode="markers", showlegend=False,
                                     marker=dict(size=13, symbol="diamond-open", line=dict(width=2)),
                                     name=plotly(name),
                                     hovertemplate="%{fullData.name}: trained N=%{x}<extra></extra>"))
    # The axis spans the curves, not the baselines: a baseline 20 points lower would flatten them.
    values = [v for c in curves.values() for v in c["top1"] if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(0.2 * (high - low), 0.005)
    at_edge = {"below": 0, "above": 0}
    for name, top1 in baselines.items():
        inside = low - pad <= top1 <= high + pad
        figures.level_line(fig, top1, f"{plotly(name)} {top1:.1%}" + ("" if inside else " (off this axis)"))
        if not inside:      # its label moves to the axis's edge, where it can be read, one line per baseline
            edge = "below" if top1 < low else "above"
            label = fig.layout.annotations[-1]
            label.y = low - pad if edge == "below" else high + pad
            label.yshift = (1 if edge == "below" else -1) * 20 * at_edge[edge] - (20 if edge == "above" else 0)
            at_edge[edge] += 1
    # Every step labelled while they fit a half-width column; every other one beyond 10.
    fig.update_xaxes(title="recursion steps N", dtick=1 if longest <= 10 else 2 if longest <= 20 else None)
    fig.update_yaxes(title="top-1 accuracy", tickformat=".1%", range=[low - pad, high + pad] if values else None)
    fig = figures.compact(fig, 440, "Accuracy vs test-time steps (each model run for 1, 2, … steps)")
    # The legend under the plot: beside it, two long model names left the curves a third of the width.
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left"))
    return fig


def per_class_figure(per_class: list[list[float]], class_names) -> go.Figure:
    """Each class's change of accuracy since step 1, on a diverging scale centred on no change: changes of
    a point or less would vanish on a 0-100% scale. Hover gives the accuracy itself."""
    matrix = np.array(per_class, dtype=float).T          # [C, S]; a class without images (null) -> NaN
    change = matrix - matrix[:, :1]
    reach = max(float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 0.0, 0.005)
    fig = go.Figure(go.Heatmap(z=change, x=_steps(per_class), y=plotly_all(class_names), colorscale="RdBu", zmid=0,
                               zmin=-reach, zmax=reach, customdata=matrix,
                               hovertemplate="%{y} at N=%{x}: %{customdata:.1%} (%{z:+.1%} since N=1)<extra></extra>",
                               colorbar=dict(tickformat="+.1%", thickness=10, title="since N=1")))
    fig.update_xaxes(title="recursion steps N", dtick=1)
    fig.update_yaxes(autorange="reversed")   # class 0 on top, as in the confusion matrix
    return figures.compact(fig, 380, "Per-class accuracy vs N: change since step 1")


DARK_CELL = 0.45         # on a 0-1 blue (or either half of a red-blue) scale, cells past this are dark


def cell_text_colour(value: float) -> str:
    """The colour of a number written in a heatmap cell whose colour sits at ``value`` (0-1, or -1-1 on a scale
    centred on zero): white on dark cells, near-black on light ones. Plotly's default grey could not be read on
    mid-blue cells."""
    return "white" if abs(float(value)) > DARK_CELL else "#1a1a1a"


def confusion_figure(confusion: list[list[int]], class_names, n: int) -> go.Figure:
    m = np.array(confusion)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    names = plotly_all(class_names)
    fig = go.Figure(go.Heatmap(z=rows, x=names, y=names, colorscale="Blues", zmin=0,
                               zmax=1, customdata=m, colorbar=dict(tickformat=".1%", thickness=10),
                               hovertemplate="true %{y}, predicted %{x}: %{customdata} (%{z:.1%})<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class")
    return figures.compact(fig, 440, f"Confusion matrix at N={n} (rows sum to 100%)")


def ece_figure(curves: dict[str, list[float]]) -> go.Figure:
    fig = go.Figure([go.Scatter(x=_steps(e), y=e, mode="lines+markers", name=plotly(name))
                     for name, e in curves.items()])
    fig.update_xaxes(title="recursion steps N", dtick=1)
    fig.update_yaxes(title="expected calibration error", rangemode="tozero")
    return figures.compact(fig, 340, "Calibration: ECE vs N (15 bins; lower is better)")


def halting_histogram_figure(histogram: list[int]) -> go.Figure:
    fig = go.Figure(go.Bar(x=_steps(histogram), y=histogram, marker_color="#54a24b"))
    fig.update_xaxes(title="step at which the halting head stops", dtick=1)
    fig.update_yaxes(title="images")
    return figures.compact(fig, 320, "Where the halting head would stop")


def tradeoff_figure(fixed_top1: list[float], sweep: pd.DataFrame | None, adaptive: tuple[float, float] | None,
                    threshold: float) -> go.Figure:
    fig = go.Figure(go.Scatter(x=_steps(fixed_top1), y=fixed_top1, mode="lines+markers", name="fixed N"))
    if sweep is not None:
        fig.add_trace(go.Scatter(x=sweep["mean_steps"], y=sweep["top1"], mode="lines+markers",
                                 name="adaptive, threshold swept", customdata=sweep["threshold"],
                                 hovertemplate="threshold %{customdata:.2f}: %{y:.2%} with %{x:.2f} steps"
                                               "<extra></extra>"))
    if adaptive is not None:
        fig.add_trace(go.Scatter(x=[adaptive[0]], y=[adaptive[1]], mode="markers", name=f"adaptive, {threshold}",
                                 marker=dict(size=14, symbol="star", color="#e45756")))
    fig.update_xaxes(title="steps spent per image (compute)")
    fig.update_yaxes(title="top-1 accuracy", tickformat=".1%")
    return figures.compact(fig, 340, "Accuracy vs compute")


def train_log_figures(log: pd.DataFrame) -> list[go.Figure]:
    loss_cols = [c for c in ("train_loss", "train_ce", "train_halt_bce") if c in log]
    acc_cols = [c for c in ("train_top1", "val_top1", "test_top1") if c in log and log[c].notna().any()]
    runs = dict(tuple(log.groupby("run", sort=True))) if "run" in log else {"": log}
    main = runs.pop("")

    def lines(cols):
        # Other runs averaged into the shipped weights share the main line's colours, dashed.
        return ([go.Scatter(x=main["epoch"], y=main[c], mode="lines+markers", name=c) for c in cols]
                + [go.Scatter(x=part["epoch"], y=part[c], mode="lines", line_dash="dash", name=f"{c}, run {name}")
                   for name, part in runs.items() for c in cols if part[c].notna().any()])

    loss, acc = go.Figure(lines(loss_cols)), go.Figure(lines(acc_cols))
    starts = [(stage, float(main.loc[main["stage"] == stage, "epoch"].min()) - 0.5)
              for stage in (sorted(main["stage"].unique())[1:] if "stage" in main else [])]
    epochs = log["epoch"].astype(float)
    for fig in (loss, acc):
        # The axis spans the epochs logged (the stage labels made plotly's range start at -50).
        fig.update_xaxes(title="epoch", tickformat="d", range=[epochs.min() - 0.5, epochs.max() + 0.5])
        for stage, x in starts:
            # A warm start: a new optimizer and schedule begin here, so a jump is expected. The label runs up the
            # line, so labels of stages a few epochs apart never print over each other (the caption says more).
            fig.add_vline(x=x, line_dash="dot")
            fig.add_annotation(x=x, y=1, xref="x", yref="y domain", text=f"stage {stage}", textangle=-90,
                               xanchor="left", yanchor="top", showarrow=False)
    acc.update_yaxes(tickformat=".1%")
    return [figures.compact(loss, 320, "Training loss"), figures.compact(acc, 320, "Accuracy during training")]


# --------------------------------------------------------------------------- drawing

def draw_accuracy(curves: dict[str, dict], baselines: dict[str, float], data_note: str) -> None:
    st.markdown("**Accuracy vs test-time steps** — one model, stopped after 1, 2, … steps")
    figures.show(accuracy_figure(curves, baselines))
    st.caption("Each line is one recursive model asked to answer after 1, 2, ... steps; the diamond marks the "
               "step count it was trained with, and dashed lines are non-recursive baselines. A curve that keeps "
               f"rising past the diamond means extra thinking helps. Compare models only at equal training budgets "
               f"(epochs in each label). Test data: {data_note}.", help=glossary.tip("top-1"))


def draw_per_class(per_class, class_names) -> None:
    figures.show(per_class_figure(per_class, class_names))
    st.caption("Each row is one class; the colour is its accuracy's change since step 1 (blue: better, red: "
               "worse, white: unchanged; hover for the accuracy itself). Classes that turn blue to the right "
               "benefit from more recursion steps.")


def draw_confusion(confusion, class_names, n: int) -> None:
    figures.show(confusion_figure(confusion, class_names, n))
    st.caption("Rows are true classes, columns the model's answers. Bright squares off the diagonal are the "
               "mix-ups (cat and dog, say); move N to see which mix-ups recursion resolves.")


def draw_ece(curves: dict[str, list[float]]) -> None:
    figures.show(ece_figure(curves))
    st.caption("Calibration error: the gap between how sure the model says it is and how often it is right. "
               "Lower means its probabilities can be taken at face value.", help=glossary.tip("ECE"))


def draw_halting(halting: dict, fixed_top1: list[float], sweep: pd.DataFrame | None) -> None:
    left, right = st.columns(2)
    with left:
        figures.show(halting_histogram_figure(halting["halt_step_histogram"]))
    with right:
        figures.show(tradeoff_figure(fixed_top1, sweep, (halting["adaptive_mean_steps"], halting["adaptive_top1"]),
                                     halting["threshold"]))
    st.caption(f"Rule: {md(halting['rule'], None)}. Adaptive halting reaches {halting['adaptive_top1']:.2%} with "
               f"{halting['adaptive_mean_steps']:.2f} steps on average. Easy images stop early; points above the "
               "fixed-N line mean the halting head saves compute for free. This is an analysis only: the "
               "scrubber always runs the steps you choose.", help=glossary.tip("halting output", "top-1"))


def draw_train_log(log: pd.DataFrame) -> None:
    left, right = st.columns(2)
    loss, acc = train_log_figures(log)
    with left:
        figures.show(loss)
    with right:
        figures.show(acc)
    st.caption("One point per epoch, from train_log.csv (preceded by stage1/, stage2/, ... for a run trained in "
               "stages, each starting warm from the last: dotted lines; dashed: other runs whose weights were averaged "
               "into the checkpoint). "
               "Validation accuracy that stops rising while training accuracy climbs is overfitting.")
