"""Answers over steps: every test image's answer token y on one 2-D map, step by step (LIT's embedding projector).

Read from the checkpoint's ``projection.safetensors`` (``python -m vitrm project``; validated by
``vitrm.sidefiles.read_projection``, a damaged or hostile file refused with its message). One projection fitted
over all steps, so a point's place means the same at every step and the class clusters can be watched forming as
the step slider moves. Every step is a frame of the one figure, shown by the figure's own slider and Play: a step
moves in the browser, with no call to the server (bench/projector_speed.py). Points are coloured by true class, by
right or wrong at the step, or by whether the answer changed between step 1 and N; WebGL (Scattergl) draws 10,000
of them. A box or lasso selection, at any step, lists the selected images in the error table (Browse images), where
they can be opened in the scrubber.
"""

from __future__ import annotations

import hashlib

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
PLAY_FRAME_MS = 500              # Play's pace, one step per frame
HEIGHT = 520                     # px, the map; the step slider and Play below it add CONTROLS
CONTROLS = 110


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


def title(p: vitrm.projection.Projection, step: int, n: int) -> str:
    """The map's title at ``step``: the step, where it stands against the trained N, and the share answered right."""
    where = "the trained N" if step == n else (f"past the trained N={n}" if step > n else f"of N={n}")
    return (f"Answer token y of {p.images:,} images after step {step} ({where}): "
            f"{float(p.right(step).mean()):.1%} answered right")


def _traces(p: vitrm.projection.Projection, step: int, colouring: str, n: int, class_names,
            full: bool) -> list[go.Scattergl]:
    """The map's traces at ``step``. ``full``: every property (the figure's own traces); otherwise only what
    changes from step to step (a frame's): the coordinates, and the members where the groups change (right/wrong)."""
    coords = p.coords[step - 1].astype(np.float32)
    # uint16 where every index fits (10,000 test images): half the bytes of int32, and the customdata of every frame
    # when the groups change (right/wrong); Plotly reads both typed arrays as the same numbers.
    index = p.index.astype(np.uint16 if p.index.max(initial=0) < 2 ** 16 else np.int32)
    if colouring == "class" and len(class_names) > MAX_LEGEND_CLASSES:
        groups = [(None, slice(None), None)]
    else:
        groups = _groups(p, colouring, step, n, class_names)
    traces = []
    for name, members, colour in groups:
        trace = go.Scattergl(x=coords[members, 0], y=coords[members, 1])
        if full or colouring == "right":
            trace.customdata = index[members]
        if full and name is None:
            trace.update(mode="markers", marker=dict(size=4, color=p.label.astype(np.int32), colorscale="Turbo",
                                                     opacity=0.7),
                         hovertemplate="image %{customdata}<extra></extra>", showlegend=False)
        elif full:
            trace.update(mode="markers", name=name, marker=dict(size=4, color=colour, opacity=0.7),
                         hovertemplate="%{fullData.name}: image %{customdata}<extra></extra>")
        traces.append(trace)
    return traces


def _step_controls(steps: int, n: int) -> dict:
    """Plotly's own step slider and Play/Pause, under the map: a step is drawn in the browser from the figure's
    frames, with no call to the server (a Streamlit slider sent 10,000 new points and redrew the page per step)."""
    readable = dict(size=figures.MIN_FONT)
    go_to = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    # Play and Pause on the row of the step's name, above the slider's left end: beside it they covered the first
    # steps' marks at 1366 px.
    slider = dict(active=0, x=0, len=1, y=0, yanchor="top", pad=dict(t=58, b=0), font=readable,
                  currentvalue=dict(prefix="Recursion step ", font=readable, xanchor="right", offset=14),
                  steps=[dict(label=f"{s}" if s != n else f"{s}=N", method="animate", args=[[str(s)], go_to])
                         for s in range(1, steps + 1)])
    play = dict(type="buttons", direction="right", showactive=False, x=0, xanchor="left", y=0, yanchor="top",
                pad=dict(t=50), font=readable,
                buttons=[dict(label="▶ Play", method="animate",
                              args=[None, dict(mode="immediate", fromcurrent=True, transition=dict(duration=0),
                                               frame=dict(duration=PLAY_FRAME_MS, redraw=True))]),
                         dict(label="❚❚", method="animate",
                              args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                 transition=dict(duration=0))])])
    return dict(sliders=[slider], updatemenus=[play])


def figure(p: vitrm.projection.Projection, colouring: str, n: int, class_names) -> go.Figure:
    """The map of every step, drawn at step 1: one Scattergl trace per colour group (each point's customdata is its
    image index), and one frame per step that the figure's own slider and Play show. The axes span every step, so
    that points move on a fixed map."""
    every = p.coords.reshape(-1, 2).astype(np.float32)
    low, high = every.min(0), every.max(0)
    pad = 0.04 * np.maximum(high - low, 1e-6)
    fig = go.Figure(data=_traces(p, 1, colouring, n, class_names, full=True))
    fig.update_xaxes(title=f"PC 1 ({p.explained[0]:.0%} of the variance)", range=[low[0] - pad[0], high[0] + pad[0]],
                     zeroline=False)
    fig.update_yaxes(title=f"PC 2 ({p.explained[1]:.0%})", range=[low[1] - pad[1], high[1] + pad[1]], zeroline=False)
    fig = figures.compact(fig, HEIGHT + CONTROLS, title(p, 1, n))
    fig.update_layout(dragmode="lasso", hovermode="closest", legend=dict(itemsizing="constant"),
                      uirevision="projector", margin=dict(b=CONTROLS))
    # Each frame's title whole (its font and place too): a frame's layout replaces the title it names. In bold, as
    # Streamlit's theme draws the figure's own title (it wraps that one in <b> in the browser); no outside text here.
    style = fig.layout.title.to_plotly_json()
    fig.frames = [go.Frame(name=str(step), data=_traces(p, step, colouring, n, class_names, full=False),
                           layout=dict(title=style | dict(text=f"<b>{title(p, step, n)}</b>")))
                  for step in range(1, p.steps + 1)]
    if p.steps > 1:
        fig.update_layout(_step_controls(p.steps, n))
    return fig


@st.cache_resource(max_entries=6, show_spinner="Drawing the map of answers…")
def cached_figure(key: tuple, _p: vitrm.projection.Projection, colouring: str, n: int,
                  class_names: tuple[str, ...]) -> go.Figure:
    """``figure``, built once per map and colouring and shared by every session (read only: Streamlit sends a
    copy); ``key``: the checkpoint and a digest of the map's coordinates. Building 16 frames of 10,000 points takes
    plotly about a second on the 2-core machine."""
    return figure(_p, colouring, n, list(class_names))


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
    colour_key = f"projector_colour::{model_key}"
    colouring = st.radio("Colour by", list(COLOURINGS), format_func=COLOURINGS.get, key=colour_key, horizontal=True)
    n = min(trained, p.steps)
    chart_key = f"projector::{model_key}::{colouring}"
    digest = hashlib.sha1(np.ascontiguousarray(p.coords).view(np.uint8)).hexdigest()
    fig = cached_figure((model_key, digest), p, colouring, n, tuple(class_names))
    st.plotly_chart(fig, width="stretch", key=chart_key,
                    on_select=lambda: _select(model_key, chart_key), selection_mode=("box", "lasso"),
                    config=figures.CONFIG)
    st.caption(md(f"One projection (PCA) fitted once over all {p.steps} steps of {p.images:,} images of "
                  f"{p.data or 'the test set'} ({p.split or 'test'} split). Move the step slider under the map, or "
                  f"press Play, to watch the classes gather: every step is in the chart, so the points move in the "
                  f"browser at once. Draw a lasso or a box around points to list those images in "
                  f"{error_table.SECTION}.", None), help=glossary.tip("PCA", "answer token y"))


def missing(model_name: str, model_path: str) -> None:
    st.info(f"{md(model_name)} has no map of answers yet. Write one with python -m vitrm project --checkpoint "
            f"{md(model_path, None)} --data SPEC (the data it was evaluated on).")
