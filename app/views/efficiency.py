"""Accuracy vs parameters and compute: the paper's "fewer parameters, competitive accuracy" as one chart.

One point per checkpoint; recursive models that differ only in their trained N are joined by a line over N
(the same parameters, more compute per step). Each point says its own training budget, so a baseline trained
for 2 epochs is never read as the equal of a model trained for 60.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

import vitrm

from .. import glossary
from ..text import md, plain, plotly
from . import figures, trained_n

SECTION = "Accuracy vs cost"
SYMBOLS = {"vitrm": "circle", "vit": "square", "cnn": "diamond"}
NAMES = {"vitrm": "ViTRM (recursive)", "vit": "ViT (unshared layers)", "cnn": "compact CNN"}


def budget(point: vitrm.ModelPoint) -> str:
    return "no training log" if point.epochs is None else f"{point.epochs} epoch{'s' if point.epochs != 1 else ''}"


def efficiency_table(points: list[vitrm.ModelPoint]) -> pd.DataFrame:
    return pd.DataFrame({
        "checkpoint": [plain(p.path.name) for p in points],
        "architecture": [NAMES.get(p.arch, plain(p.arch)) for p in points],
        "trained N": [p.trained_steps for p in points],
        "parameters": [p.parameters for p in points],
        "MFLOPs / image": [round(p.flops_per_image / 1e6, 1) for p in points],
        "training budget": [budget(p) for p in points],
        "test top-1 at N": [None if p.top1 is None else round(100 * p.top1, 2) for p in points],
    })


def _groups(points: list[vitrm.ModelPoint]) -> list[list[vitrm.ModelPoint]]:
    """Recursive models of one family (equal but for N) and one training budget as one group sorted by N, when
    their N differ; every other model alone. Two models at the same N (a long and a short run of one
    architecture) are two points, never a line."""
    families: dict[tuple, list[vitrm.ModelPoint]] = {}
    alone = []
    for p in points:
        if p.family is not None:
            families.setdefault((p.family, p.epochs), []).append(p)
        else:
            alone.append([p])
    groups = []
    for members in families.values():
        if len({p.trained_steps for p in members}) == len(members):
            groups.append(sorted(members, key=lambda p: p.trained_steps))
        else:
            groups += [[p] for p in members]
    return groups + alone


def efficiency_figure(points: list[vitrm.ModelPoint]) -> go.Figure:
    """Top-1 against parameters (left) and against MFLOPs per image (right), both on log axes."""
    measured = [p for p in points if p.top1 is not None]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06)
    for group in _groups(measured):
        first = group[0]
        line = len(group) > 1
        label = plotly(first.path.name if not line else f"{first.path.name} … (N = "
                       f"{', '.join(str(p.trained_steps) for p in group)})")
        hover = [[plotly(p.path.name), NAMES.get(p.arch, plotly(p.arch)), p.trained_steps, budget(p),
                  p.parameters, p.flops_per_image / 1e6] for p in group]
        template = ("%{customdata[0]} (%{customdata[1]}, N=%{customdata[2]}): %{y:.2%}<br>"
                    "%{customdata[4]:,} parameters, %{customdata[5]:.1f} MFLOPs per image<br>"
                    "trained %{customdata[3]}<extra></extra>")
        for col, x in ((1, [p.parameters for p in group]), (2, [p.flops_per_image / 1e6 for p in group])):
            fig.add_trace(go.Scatter(
                x=x, y=[p.top1 for p in group], mode="lines+markers" if line else "markers",
                marker=dict(size=11, symbol=SYMBOLS.get(first.arch, "circle")), name=label, legendgroup=label,
                showlegend=col == 1, customdata=hover, hovertemplate=template), row=1, col=col)
    fig.update_xaxes(type="log", title_text="parameters (log)", row=1, col=1)
    fig.update_xaxes(type="log", title_text="MFLOPs per image at the trained N (log)", row=1, col=2)
    fig.update_yaxes(title_text="test top-1 at its own N", tickformat=".0%", row=1, col=1)
    fig = figures.compact(fig, 460, "Accuracy vs parameters and compute (one point per model)")
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    return fig


def draw_efficiency(points: list[vitrm.ModelPoint]) -> None:
    st.markdown("**Accuracy vs parameters and compute** — every loaded checkpoint, each at its own trained N")
    if not any(p.top1 is not None for p in points):
        if any(what == "accuracy" for p in points for what, _ in p.problems):
            st.info("No checkpoint's accuracy can be read, so there is none to place (why, below).")
        else:
            st.info("None of the checkpoints has been evaluated yet (`python -m vitrm evaluate`), so there is no "
                    "accuracy to place.")
        trained_n.draw_problems(points)
        return
    fig = efficiency_figure(points)
    figures.show(fig)
    table = efficiency_table(points)
    st.dataframe(table, hide_index=True, width="stretch")
    trained_n.draw_problems(points)
    budgets = sorted({budget(p) for p in points})
    data = sorted({str(p.data) for p in points if p.data})
    glossary.caption("Recursive models that differ only in their trained N are joined by a line over N: the same "
               "parameters, more compute per image. **Training budgets differ between groups** "
               f"({md(', '.join(budgets), 300)}; the log of a staged run counts its last stage only): compare "
               "models of one budget, such as the compare60-* checkpoints (one recipe, 60 epochs each). "
               f"Test data: {md(', '.join(data), 400) or 'not evaluated yet'}.",
                     # every term the chart and the table show, explained on the caption's tooltip
                     fig.layout.title.text, *(axis.title.text or "" for axis in (fig.layout.xaxis, fig.layout.xaxis2)),
                     " ".join(table.columns))
