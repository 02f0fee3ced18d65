"""What if the image were different? Edit the image in focus and see its new trace beside the original.

Cover patches (a click on the token grid, or the multiselect beside it), add noise, blur, change the brightness,
crop or rotate: the edits are ``vitrm.edits`` values built from this view's widgets, so they live in the session
only (``st.session_state``), are never written anywhere, and are bounded by the library (at most one of each
kind here, every amount within the library's range). The page traces the edited pixels like any other image
(``trace`` is its callable) and this view draws both answers by step and the steps at which they part.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

import vitrm

from ..text import md, md_table, plain, plotly_all
from . import figures

OPEN = "whatif_open"        # the section's expander: drawn, and the edited image traced, only once opened
# kind -> (label, lowest, highest, step, the value that means "no edit"); the library bounds each amount too.
SLIDERS = {
    "noise": ("Noise (std, share of the pixel range)", 0.0, 0.5, 0.01, 0.0),
    "blur": ("Blur (sigma, pixels)", 0.0, 4.0, 0.2, 0.0),
    "brightness": ("Brightness (factor)", 0.0, 3.0, 0.1, 1.0),
    "crop": ("Centre crop (share of the side kept)", 0.25, 1.0, 0.05, 1.0),
    "rotate": ("Rotate (degrees)", -180.0, 180.0, 5.0, 0.0),
}


def _key(name: str) -> str:
    return f"whatif::{name}"


def _toggle_patch(chart_key: str) -> None:
    """on_select of the grid: the clicked patch joins the covered ones, or leaves them."""
    points = st.session_state[chart_key].selection.points
    if not points or "customdata" not in points[0]:
        return
    patch = int(points[0]["customdata"])
    covered = list(st.session_state.get(_key("patches"), []))
    st.session_state[_key("patches")] = sorted(set(covered) ^ {patch})
    st.session_state[_key("clicks")] = st.session_state.get(_key("clicks"), 0) + 1     # a fresh chart, unselected


def grid_figure(pixels: np.ndarray, grid: int, covered) -> go.Figure:
    """The edited model input with its token grid: a number on every patch, covered ones ringed, each clickable."""
    size = pixels.shape[0]
    cell = size / grid
    centres = [((p % grid + 0.5) * cell - 0.5, (p // grid + 0.5) * cell - 0.5) for p in range(grid * grid)]
    fig = go.Figure(go.Image(z=pixels, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=[c[0] for c in centres], y=[c[1] for c in centres], mode="markers+text", text=[str(p) for p in
                                                                                          range(grid * grid)],
        customdata=list(range(grid * grid)), textfont=dict(size=14, color="white"), showlegend=False,
        marker=dict(symbol="square", size=28, color="rgba(0,0,0,0.15)",
                    line=dict(width=[3 if p in covered else 0 for p in range(grid * grid)], color="#e45756")),
        hovertemplate="patch %{customdata}: click to cover or uncover<extra></extra>"))
    for k in range(1, grid):
        fig.add_shape(type="line", x0=k * cell - 0.5, x1=k * cell - 0.5, y0=-0.5, y1=size - 0.5,
                      line=dict(color="white", width=1))
        fig.add_shape(type="line", y0=k * cell - 0.5, y1=k * cell - 0.5, x0=-0.5, x1=size - 0.5,
                      line=dict(color="white", width=1))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig = figures.compact(fig, 320, "Edited input: click a patch to cover it")
    fig.update_layout(clickmode="event+select", dragmode=False, hovermode="closest", meta=figures.MAP)
    return fig


def controls(grid: int) -> tuple[vitrm.edits.Edit, ...]:
    """The sliders and the patch multiselect; the edit list they hold (neutral values are no edit)."""
    Edit = vitrm.edits.Edit
    cells = grid * grid
    st.multiselect("Covered patches", list(range(cells)), key=_key("patches"), placeholder="none",
                   format_func=lambda p: f"patch {p} (row {p // grid + 1}, column {p % grid + 1})",
                   help="The model's token grid, row by row from the top left: the same as clicking the patches.")
    columns = st.columns(len(SLIDERS))
    edits = []
    covered = [p for p in st.session_state.get(_key("patches"), []) if 0 <= p < cells]
    if covered:
        edits.append(Edit("cover", patches=tuple(sorted(covered))))
    for column, (kind, (label, low, high, step, neutral)) in zip(columns, SLIDERS.items()):
        st.session_state.setdefault(_key(kind), neutral)
        value = float(column.slider(label, low, high, step=step, key=_key(kind)))
        if value != neutral and (kind not in ("noise", "blur") or value >= vitrm.edits.KINDS[kind][0]):
            edits.append(Edit(kind, value))
    return tuple(edits)


def answers_table(original: np.ndarray, edited: np.ndarray, class_names, trained: int) -> list[dict]:
    """One row per step: each trace's answer and its probability, and whether they part there."""
    parted = set(vitrm.edits.parting_steps(original, edited))
    rows = []
    for s in range(1, min(len(original), len(edited)) + 1):
        a, b = int(original[s - 1].argmax()), int(edited[s - 1].argmax())
        rows.append({"step": f"{s}{' (trained N)' if s == trained else ''}",
                     "original": f"{plain(class_names[a])} {original[s - 1, a]:.0%}",
                     "edited": f"{plain(class_names[b])} {edited[s - 1, b]:.0%}",
                     "": "parts here" if s in parted else ""})
    return rows


def probability_figure(original: np.ndarray, edited: np.ndarray, class_names, parted: list[int]) -> go.Figure:
    """The probability of the original's answer at the last step, step by step, for both images."""
    top = int(original[-1].argmax())
    steps = np.arange(1, len(original) + 1)
    name = plotly_all([class_names[top]])[0]
    fig = go.Figure([go.Scatter(x=steps, y=original[:, top], mode="lines+markers", name="original"),
                     go.Scatter(x=steps, y=edited[: len(steps), top], mode="lines+markers", name="edited",
                                line=dict(dash="dash"))])
    for s in parted:
        fig.add_vrect(x0=s - 0.5, x1=s + 0.5, fillcolor="#e45756", opacity=0.12, line_width=0)
    fig.update_xaxes(title="recursion step", dtick=1)
    fig.update_yaxes(title=f"probability of {name}", tickformat=".0%", range=[0, 1])
    fig = figures.compact(fig, 320, "Original vs edited (shaded: the steps where the answers part)")
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, x=0, xanchor="left"))
    return fig


def parting_sentence(parted: list[int], steps: int) -> str:
    if not parted:
        return f"The edited image gets the same answer as the original at every step (1 to {steps})."
    shown = ", ".join(map(str, parted))
    return (f"The answers part at step{'s' if len(parted) > 1 else ''} {shown} of {steps}"
            f" (first at step {parted[0]}).")


def draw(pixels: np.ndarray, original: np.ndarray, class_names, grid: int, trained: int,
         trace: Callable[[np.ndarray, str], np.ndarray]) -> None:
    """``pixels`` [H, W, 3] uint8, the model input in focus; ``original`` [S, C] its probabilities by step;
    ``trace(edited_pixels, key)`` the probabilities by step of edited pixels (``key`` names them for a cache)."""
    edits = controls(grid)
    try:
        edited = vitrm.edits.apply(torch.from_numpy(np.array(pixels)).permute(2, 0, 1), edits, grid)
    except vitrm.edits.EditError as e:
        st.error(md(e))
        return
    edited_pixels = np.ascontiguousarray(edited.permute(1, 2, 0).numpy())
    key = "edits:" + repr(edits)
    probs = trace(edited_pixels, key) if edits else original
    parted = vitrm.edits.parting_steps(original, probs)
    left, right = st.columns([2, 3])
    with left:
        chart_key = f"whatif_grid::{st.session_state.get(_key('clicks'), 0)}"
        st.plotly_chart(grid_figure(edited_pixels, grid, set(edits[0].patches) if edits and edits[0].kind == "cover"
                                    else set()), key=chart_key, on_select=lambda: _toggle_patch(chart_key),
                        selection_mode="points", width="stretch", config={"displayModeBar": False})
    with right:
        figures.show(probability_figure(original, probs, class_names, parted))
    said = "; ".join(vitrm.edits.describe(e) for e in edits) or "no edit yet: move a slider or click a patch"
    st.markdown(f"**Edits:** {md(said, None)}. {parting_sentence(parted, min(len(original), len(probs)))}")
    st.markdown(md_table(answers_table(original, probs, class_names, trained)))
    st.caption("Edits are kept in this session only and never saved. The edited image is traced with the same "
               "model and steps; the table gives each step's answer and its probability for both.")
