"""Accuracy vs trained N: one model per N (the paper's claim), drawn beside one model's test-time steps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import vitrm

from .. import glossary
from ..text import MAX_MESSAGE, md, plain, plotly
from . import figures


def sweep_table(points: list[vitrm.SweepPoint]) -> pd.DataFrame:
    return pd.DataFrame({
        "checkpoint": [plain(p.path.name) for p in points],
        "trained N": [p.trained_steps for p in points],
        "parameters": [p.parameters for p in points],
        "MFLOPs / image": [round(p.flops_per_image / 1e6, 1) for p in points],
        "epochs": [p.epochs for p in points],
        "test top-1 at N": [None if p.top1 is None else round(100 * p.top1, 2) for p in points],
    })


def trained_n_figure(points: list[vitrm.SweepPoint]) -> go.Figure:
    measured = [p for p in points if p.top1 is not None]
    fig = go.Figure(go.Scatter(
        x=[p.trained_steps for p in measured], y=[p.top1 for p in measured], mode="lines+markers",
        marker=dict(size=10, symbol="square"), name="one model per N",
        customdata=[[plotly(p.path.name), p.flops_per_image / 1e6] for p in measured],
        hovertemplate="trained and tested with N=%{x}: %{y:.2%}<br>%{customdata[0]}, "
                      "%{customdata[1]:.1f} MFLOPs per image<extra></extra>"))
    ns = [p.trained_steps for p in points]
    # Powers of two are the usual sweep; a log axis spaces them evenly.
    fig.update_xaxes(title="recursion steps N used in training and at test", type="log",
                     tickvals=ns, ticktext=[str(n) for n in ns])
    fig.update_yaxes(title="top-1 accuracy at its own N", tickformat=".1%", range=accuracy_range(measured))
    return figures.compact(fig, 380, f"Accuracy vs trained N (one model per N, {budget(points)})")


def budget(points: list[vitrm.SweepPoint]) -> str:
    """The sweep's training budget in words: two sweeps of one architecture differ mainly in it."""
    epochs = sorted({p.epochs for p in points if p.epochs is not None})
    if not epochs:
        return "training budget not recorded"
    if len(epochs) == 1 and all(p.epochs is not None for p in points):
        return f"{epochs[0]} epochs each"
    return "unequal budgets: " + ", ".join(f"N={p.trained_steps} {p.epochs or '?'} epochs" for p in points)


MIN_SPAN = 0.10          # the accuracy axis spans at least 10 points


def accuracy_range(points: list[vitrm.SweepPoint]) -> list[float] | None:
    """At least MIN_SPAN around the measured accuracies, within 0-100%: on plotly's own range a 0.7-point gain
    filled the whole height (58.8-59.6%) and looked steep."""
    if not points:
        return None
    low, high = min(p.top1 for p in points), max(p.top1 for p in points)
    span = max(MIN_SPAN, 1.3 * (high - low))
    middle = (low + high) / 2
    bottom = min(max(0.0, middle - span / 2), 1.0 - span)
    return [bottom, bottom + span]


def draw_problems(points: list[vitrm.SweepPoint] | list[vitrm.ModelPoint]) -> None:
    """What each point lacks and why (a damaged file, or one past its checkpoint's budget), so that an empty cell or a
    missing point is never left unexplained; shared by this view and the cost chart."""
    for p in points:
        for what, problem in p.problems:
            st.warning(md(f"{p.path.name}: its {what} is not shown: {problem}", MAX_MESSAGE))


def draw_trained_n(sweeps: list[list[vitrm.SweepPoint]]) -> None:
    """One chart and table per sweep found among the checkpoints; a hint when there is none."""
    st.markdown("**Accuracy vs trained N** — separate models, one per N")
    if not sweeps:
        st.info("No trained-N sweep among the checkpoints: it needs two or more ViTRM checkpoints whose "
                "config.json files differ only in trained_steps (for example checkpoints/sweep-N1 … sweep-N8).")
        return
    for points in sweeps:
        figures.show(trained_n_figure(points))
        st.dataframe(sweep_table(points), hide_index=True, width="stretch")
        draw_problems(points)
        data = sorted({str(p.data) for p in points if p.data})
        st.caption(vitrm.SWEEP_EXPLANATION + " Same parameters at every N; only the compute per image grows. "
                   f"Test data: {md(', '.join(data), 400) or 'not evaluated yet'} "
                   f"({md(Path(points[0].path).parent.name)}/).", help=glossary.tip("MFLOPs", "top-1"))
