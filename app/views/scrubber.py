"""The recursion scrubber: what the model believes at the selected step, and how it got there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from .. import derive
from ..text import md, plotly
from . import figures


def draw_prediction(probs: np.ndarray, step: int, class_names, label: str | None) -> None:
    """The headline: top class and its probability at the step (probs [S, C])."""
    p = probs[step - 1]
    top = int(p.argmax())
    cols = st.columns(3)
    cols[0].metric(f"Top class at step {step}", md(class_names[top]))
    cols[1].metric("Probability", f"{100 * p[top]:.2f}%")
    if label is not None:
        verdict = "right" if class_names[top] == label else "wrong"
        cols[2].metric("True class", md(label), help=f"The model is {verdict} at step {step}.")
        cols[2].markdown(f":green[right at step {step}]" if verdict == "right" else f":red[wrong at step {step}]")


# Figures are built once per trace (and per step for the bars) and kept as validated specs: a slider
# move then only wraps a spec and moves the step marker (app.views.figures.from_spec).
SPECS = 512
PLAY_INTERVAL = 0.8      # seconds per step while the scrubber plays (bench/browser_speed.py reads it)


def top_k_figure(p: np.ndarray, class_names, k: int) -> go.Figure:
    return figures.from_spec(_top_k_spec(p, tuple(class_names), k))


@st.cache_data(max_entries=SPECS, show_spinner=False)
def _top_k_spec(p: np.ndarray, class_names: tuple[str, ...], k: int) -> dict:
    order = np.argsort(p)[::-1][:k][::-1]
    fig = go.Figure(go.Bar(x=p[order], y=[plotly(class_names[i]) for i in order], orientation="h",
                           text=[f"{100 * v:.1f}%" for v in p[order]], textposition="auto",
                           marker_color="#4c78a8"))
    fig.update_xaxes(range=[0, 1], title="probability")
    return figures.spec(figures.compact(fig, 260, f"Top {k} classes"))


def class_lines_figure(probs: np.ndarray, step: int, class_names) -> go.Figure:
    return figures.from_spec(_class_lines_spec(probs, tuple(class_names)), step)


@st.cache_data(max_entries=SPECS, show_spinner=False)
def _class_lines_spec(probs: np.ndarray, class_names: tuple[str, ...]) -> dict:
    steps = np.arange(1, len(probs) + 1)
    fig = go.Figure([go.Scatter(x=steps, y=probs[:, c], mode="lines+markers", name=plotly(name),
                                hovertemplate="%{fullData.name}: %{y:.3f} at step %{x}<extra></extra>")
                     for c, name in enumerate(class_names)])
    fig.update_xaxes(title="step", dtick=1 if len(probs) <= 20 else None)
    fig.update_yaxes(title="probability", range=[0, 1])
    return figures.spec(figures.compact(fig, 300, "Every class's probability, step by step"))


def halting_figure(halt: np.ndarray, step: int, stop: int | None) -> go.Figure:
    return figures.from_spec(_halting_spec(halt, stop), step)


@st.cache_data(max_entries=SPECS, show_spinner=False)
def _halting_spec(halt: np.ndarray, stop: int | None) -> dict:
    steps = np.arange(1, len(halt) + 1)
    fig = go.Figure(go.Scatter(x=steps, y=halt, mode="lines+markers", name="halting probability",
                               line=dict(color="#54a24b")))
    figures.level_line(fig, derive.HALT_THRESHOLD, f"threshold {derive.HALT_THRESHOLD}")
    if stop is not None:
        fig.add_trace(go.Scatter(x=[stop], y=[halt[stop - 1]], mode="markers", name="would stop here",
                                 marker=dict(size=14, symbol="star", color="#e45756")))
    fig.update_xaxes(title="step", dtick=1 if len(halt) <= 20 else None)
    fig.update_yaxes(title="halting output", range=[0, 1])
    fig.update_layout(showlegend=False)
    return figures.spec(figures.compact(fig, 260, "Halting head: its own guess that the answer is right"))


def updates_figure(y_update: np.ndarray, z_update: np.ndarray, step: int) -> go.Figure:
    return figures.from_spec(_updates_spec(y_update, z_update), step)


@st.cache_data(max_entries=SPECS, show_spinner=False)
def _updates_spec(y_update: np.ndarray, z_update: np.ndarray) -> dict:
    steps = np.arange(1, len(y_update) + 1)
    fig = go.Figure([go.Scatter(x=steps, y=y_update, mode="lines+markers", name="‖Δy‖ (answer)"),
                     go.Scatter(x=steps, y=z_update, mode="lines+markers", name="RMS ‖Δz‖ (latents)")])
    fig.update_xaxes(title="step", dtick=1 if len(steps) <= 20 else None)
    fig.update_yaxes(title="size of the update", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=-0.3))
    return figures.spec(figures.compact(fig, 260, "How much each step changes y and z"))


def draw_scrubber(table: pd.DataFrame, probs: np.ndarray, halt: np.ndarray | None, step: int,
                  class_names, label: str | None, file_stem: str, top_k: int = 5) -> None:
    """``table`` is ``derive.per_step_table`` for steps 1..N, ``probs`` [N, C], ``halt`` [N] or None."""
    draw_prediction(probs, step, class_names, label)
    left, right = st.columns([2, 3])
    with left:
        figures.show(top_k_figure(probs[step - 1], class_names, min(top_k, len(class_names))))
    with right:
        figures.show(class_lines_figure(probs, step, class_names))
    st.caption("The bars are the model's belief after the selected step; the lines show how that belief "
               "moved over all steps. A line that keeps rising after the trained step count means more "
               "thinking still helps.")

    changes = derive.prediction_changes(probs, class_names)
    if changes:
        st.markdown("**The top prediction changed:** " + "; ".join(md(change, None) for change in changes))
    else:
        st.markdown(f"**The top prediction never changed** over {len(probs)} steps: "
                    f"{md(class_names[int(probs[0].argmax())])} from step 1.")

    left, right = st.columns(2)
    with left:
        if halt is None:
            st.info("This model is not recursive, so it has no halting head: it always answers in one step.")
        else:
            stop = derive.halting_step(halt)
            figures.show(halting_figure(halt, step, stop))
            st.caption(
                f"The halting head estimates whether the current answer is right. It would stop at step {stop} "
                f"(the first step at or above {derive.HALT_THRESHOLD})." if stop else
                f"The halting head never reaches {derive.HALT_THRESHOLD} within {len(halt)} steps, so it would "
                "run them all. This is an analysis: the scrubber always shows the step you choose.")
    with right:
        figures.show(updates_figure(table["y_update"].to_numpy(), table["z_update"].to_numpy(), step))
        st.caption("Big updates mean the model is still changing its mind; updates that shrink towards zero "
                   "mean its thinking has settled.")

    # Deferred: the CSV is made on a click, not on every step, and the page holds no file URL that a
    # fragment rerun (a slider move, a Play tick) could leave behind; clicking reruns nothing.
    st.download_button("Download per-step results (CSV)", lambda: table.to_csv(index=False).encode(),
                       file_name=f"{file_stem}-per-step.csv", mime="text/csv", on_click="ignore")
