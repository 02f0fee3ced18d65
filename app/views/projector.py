"""Answers over steps: every test image's answer token y on one 2-D map, step by step (LIT's embedding projector).

Read from the checkpoint's ``projection.safetensors`` (``python -m vitrm project``; validated by
``vitrm.sidefiles.read_projection``, a damaged or hostile file refused with its message). One projection fitted
over all steps, so a point's place means the same at every step and the class clusters can be watched forming as
the step slider moves. Points are coloured by true class, by right or wrong at the step, or by whether the answer
changed between step 1 and N; WebGL (Scattergl) draws 10,000 of them. A box or lasso selection lists the selected
images in the error table (Browse images), where they can be opened in the scrubber.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import vitrm

from .. import error_list, glossary
from ..text import md, plotly_all
from . import error_table, figures

SECTION = "Answers over steps"
COLOURINGS = {"class": "true class", "right": "right or wrong at this step", "changed": "answer changed, step 1 vs N"}
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
           "#eeca3b"]
MAX_LEGEND_CLASSES = 20          # more classes: one trace, coloured by class index, no legend


@st.cache_resource(max_entries=8, show_spinner="Reading the map of answers…")
def read(path: str, stamp: tuple[int, int], num_classes: int) -> vitrm.projection.Projection | str | None:
    """The checkpoint's projection (shared read-only by every session), its problem as a sentence, or None when
    it has none. ``stamp`` (mtime, size) makes a rewritten file read again."""
    try:
        return vitrm.sidefiles.read_projection(path, num_classes)
    except vitrm.CheckpointError as e:
        return str(e)


def stamp(path: Path) -> tuple[int, int]:
    try:
        info = os.stat(path / vitrm.projection.FILE)
        return info.st_mtime_ns, info.st_size
    except OSError:
        return 0, 0


def _groups(p: vitrm.projection.Projection, colouring: str, step: int, n: int, class_names) -> list[tuple]:
    """(name, member mask, colour) of each trace drawn."""
    if colouring == "right":
        right = p.right(step)
        return [("right", right, "#54a24b"), ("wrong", ~right, "#e45756")]
    if colouring == "changed":
        changed = p.changed(n)
        return [(f"same answer at 1 and {n}", ~changed, "#bab0ac"), (f"changed between 1 and {n}", changed, "#e45756")]
    names = plotly_all(class_names)
    return [(names[c], p.label == c, PALETTE[c % len(PALETTE)]) for c in range(len(class_names))]


def figure(p: vitrm.projection.Projection, step: int, colouring: str, n: int, class_names) -> go.Figure:
    """The map at ``step``: one Scattergl trace per colour group; each point's customdata is its image index.
    The axes span every step, so that points move on a fixed map."""
    coords = p.coords[step - 1].astype(np.float32)
    every = p.coords.reshape(-1, 2).astype(np.float32)
    low, high = every.min(0), every.max(0)
    pad = 0.04 * np.maximum(high - low, 1e-6)
    fig = go.Figure()
    if colouring == "class" and len(class_names) > MAX_LEGEND_CLASSES:
        fig.add_trace(go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers", customdata=p.index,
                                   marker=dict(size=4, color=p.label, colorscale="Turbo", opacity=0.7),
                                   hovertemplate="image %{customdata}<extra></extra>", showlegend=False))
    else:
        for name, members, colour in _groups(p, colouring, step, n, class_names):
            fig.add_trace(go.Scattergl(x=coords[members, 0], y=coords[members, 1], mode="markers", name=name,
                                       customdata=p.index[members], marker=dict(size=4, color=colour, opacity=0.7),
                                       hovertemplate="%{fullData.name}: image %{customdata}<extra></extra>"))
    fig.update_xaxes(title=f"PC 1 ({p.explained[0]:.0%} of the variance)", range=[low[0] - pad[0], high[0] + pad[0]],
                     zeroline=False)
    fig.update_yaxes(title=f"PC 2 ({p.explained[1]:.0%})", range=[low[1] - pad[1], high[1] + pad[1]], zeroline=False)
    fig = figures.compact(fig, 520, f"Every image's answer token y after step {step} ({p.images:,} images)")
    fig.update_layout(dragmode="lasso", hovermode="closest", legend=dict(itemsizing="constant"),
                      uirevision="projector")
    return fig


def _select(model_key: str, chart_key: str) -> None:
    """on_select: the selected images become the error table's list (every other filter reset), and it opens."""
    points = st.session_state[chart_key].selection.points
    chosen = sorted({int(pt["customdata"]) for pt in points if "customdata" in pt})
    if not chosen:
        return
    error_table.set_filters(model_key, error_list.Filters(images=tuple(chosen)))
    st.session_state["analysis_view"] = error_table.SECTION


def draw(model_key: str, p: vitrm.projection.Projection, class_names, trained: int) -> None:
    """The controls and the map for one model's projection; ``trained`` is its trained N."""
    c1, c2 = st.columns([3, 2])
    step_key, colour_key = f"projector_step::{model_key}", f"projector_colour::{model_key}"
    if p.steps > 1:
        st.session_state.setdefault(step_key, 1)
        step = int(c1.slider("Recursion step", 1, p.steps, key=step_key,
                             help="The map stays the same at every step; the points move on it."))
    else:
        step = 1
    colouring = c2.radio("Colour by", list(COLOURINGS), format_func=COLOURINGS.get, key=colour_key, horizontal=True)
    n = min(trained, p.steps)
    chart_key = f"projector::{model_key}::{step}::{colouring}"
    st.plotly_chart(figure(p, step, colouring, n, class_names), width="stretch", key=chart_key,
                    on_select=lambda: _select(model_key, chart_key), selection_mode=("box", "lasso"),
                    config=figures.CONFIG)
    right = float(p.right(step).mean())
    st.caption(md(f"One projection (PCA) fitted once over all {p.steps} steps of {p.images:,} images of "
                  f"{p.data or 'the test set'} ({p.split or 'test'} split): at step {step}, {right:.1%} of them are "
                  f"answered right. Move the step to watch the classes gather. Draw a lasso or a box around points "
                  f"to list those images in {error_table.SECTION}.", None), help=glossary.tip("PCA", "answer token y"))


def missing(model_name: str, model_path: str) -> None:
    st.info(f"{md(model_name)} has no map of answers yet. Write one with python -m vitrm project --checkpoint "
            f"{md(model_path, None)} --data SPEC (the data it was evaluated on).")
