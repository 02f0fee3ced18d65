"""The evolving state: the latents z over the image, and the answer token y's path."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .. import glossary
from ..text import plotly, plotly_all
from . import figures


def z_size_figure(pixels: np.ndarray, z_norm: np.ndarray, step: int) -> go.Figure:
    """``z_norm`` [S, g, g]. The block ends in a LayerNorm, so raw sizes all sit near one value and a colour bar
    over them spans a meaningless sliver (11.7-12.1); drawn instead as each patch's difference from the average
    patch of this image over all steps, on one scale centred on that average for every step."""
    relative = z_norm / float(z_norm.mean()) - 1.0
    reach = max(float(np.abs(relative).max()), 1e-3)
    return figures.overlay(pixels, relative[step - 1], title=f"‖z‖ per patch vs the average patch, step {step}",
                           colorscale=figures.SIGNED_OVER_PHOTO, zmin=-reach, zmax=reach, zmid=0.0,
                           colorbar_title="vs average<br>(all steps)", colorbar_format="+.1%")


def z_change_figure(pixels: np.ndarray, z_change: np.ndarray, step: int) -> go.Figure:
    """``z_change`` [S, g, g]; one scale from 0 (did not move) to the largest move of any step."""
    return figures.overlay(pixels, z_change[step - 1], title=f"‖z − previous z‖, step {step}",
                           zmin=0.0, zmax=max(float(z_change.max()), 1e-6),
                           colorbar_title="moved<br>(0 = not at all;<br>scale of all steps)")


def z_pca_figure(pixels: np.ndarray, z_rgb: np.ndarray, step: int) -> go.Figure:
    rgb = (figures.upscale(z_rgb[step - 1], pixels.shape[0]) * 255).round().astype(np.uint8)
    fig = go.Figure(go.Image(z=rgb, hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(meta=figures.MAP)
    return figures.compact(fig, 300, f"z as colour (PCA), step {step}")


LABELLED = 3            # class arrows named on the plot: the most probable at the step
LABEL_APART = 20.0      # degrees: a named arrow closer than this to a more probable named one is left unnamed


def labelled_classes(arrows: np.ndarray, p: np.ndarray) -> list[int]:
    """The classes whose arrows are named on the y-path plot: the most probable at the step (``p`` [C]), each at
    least LABEL_APART degrees from the ones before it. Ten names at ten arrow tips printed over each other
    where arrows point alike; the others are named on hover."""
    angles = np.degrees(np.arctan2(arrows[:, 1], arrows[:, 0]))
    chosen: list[int] = []
    for c in np.argsort(p)[::-1]:
        apart = [abs((angles[c] - angles[o] + 180) % 360 - 180) >= LABEL_APART for o in chosen]
        if all(apart):
            chosen.append(int(c))
        if len(chosen) == LABELLED:
            break
    return chosen


def y_path_figure(points: np.ndarray, arrows: np.ndarray | None, ratio: np.ndarray, step: int,
                  class_names, probs: np.ndarray) -> go.Figure:
    """``points`` [S, 2] for steps 1..S; only steps up to len(probs) are drawn. The start and the selected step
    are told apart by marker and legend, not by text on the plot, where it printed over the class names."""
    shown = points[:len(probs)]
    labels = [f"step {s + 1}: {plotly(class_names[int(probs[s].argmax())])}" for s in range(len(shown))]
    fig = go.Figure()
    if arrows is not None:
        for dx, dy in arrows:
            fig.add_annotation(x=dx, y=dy, ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y", text="",
                               showarrow=True, arrowhead=2, arrowcolor="#bbbbbb")
        names = plotly_all(class_names)
        named = set(labelled_classes(arrows, probs[step - 1]))
        fig.add_trace(go.Scatter(x=arrows[:, 0] * 1.12, y=arrows[:, 1] * 1.12, mode="text+markers",
                                 text=[names[c] if c in named else "" for c in range(len(names))],
                                 customdata=names, hovertemplate="arrow of %{customdata}<extra></extra>",
                                 marker=dict(size=8, color="rgba(0,0,0,0)"),
                                 textfont=dict(size=figures.MIN_FONT, color="#666666"), name="classes",
                                 showlegend=False))
    fig.add_trace(go.Scatter(x=shown[:, 0], y=shown[:, 1], mode="lines+markers", text=labels,
                             hovertemplate="%{text}<extra></extra>", line=dict(color="#4c78a8"),
                             marker=dict(size=7), name="y after each step"))
    fig.add_trace(go.Scatter(x=[shown[0, 0]], y=[shown[0, 1]], mode="markers", text=[labels[0]],
                             hovertemplate="%{text}<extra></extra>", marker=dict(size=9, color="black"),
                             name="step 1"))
    fig.add_trace(go.Scatter(x=[shown[step - 1, 0]], y=[shown[step - 1, 1]], mode="markers", name=f"step {step}",
                             text=[labels[step - 1]], hovertemplate="%{text}<extra></extra>",
                             marker=dict(size=15, color="#e45756", symbol="circle-open", line=dict(width=3))))
    fig.update_xaxes(title=f"PC1 ({100 * ratio[0]:.0f}% of variance)", zeroline=False)
    fig.update_yaxes(title=f"PC2 ({100 * ratio[1]:.0f}%)", zeroline=False, scaleanchor="x")
    fig.update_layout(showlegend=True, legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return figures.compact(fig, 400, "The answer token y, step by step (2-D PCA)")


def draw_state(pixels: np.ndarray, z_norm: np.ndarray, z_change: np.ndarray, z_rgb: np.ndarray,
               points: np.ndarray, arrows: np.ndarray | None, ratio: np.ndarray, probs: np.ndarray, step: int,
               class_names) -> None:
    left, middle = st.columns(2)
    with left:
        options = ["‖z‖: size of the latent", "‖z − previous z‖: how far it moved"]
        measure = st.radio("Latent map", options, horizontal=True, key="z_measure", label_visibility="collapsed",
                           help=glossary.help_for(*options))
        if measure.startswith("‖z‖"):
            fig = z_size_figure(pixels, z_norm, step)
            figures.show(fig)
            glossary.caption("The size of each patch's latent z, the model's scratch pad, as its difference from the "
                             "average patch (a block that ends in a LayerNorm, as ViTRM Lab's own do, keeps them "
                             "within a few percent): red "
                             "patches carry larger latents than average, blue smaller; the scale is the same at every "
                             "step.", fig.layout.title.text)
        else:
            fig = z_change_figure(pixels, z_change, step)
            figures.show(fig)
            glossary.caption("How far each patch's latent moved during this step, on one scale for all steps. Coloured "
                             "patches are where the model is still revising its notes; where the photo shows through "
                             "clearly, its thinking has settled.", fig.layout.title.text)
    with middle:
        fig = z_pca_figure(pixels, z_rgb, step)
        figures.show(fig)
        glossary.caption("The three main directions in which the latents vary, shown as red, green and blue. "
                         "The colours mean the same at every step, so a patch that changes colour changed its mind.",
                         fig.layout.title.text)
    fig = y_path_figure(points, arrows, ratio, step, class_names, probs)
    figures.show(fig)
    glossary.caption("Each dot is the answer token y after one step, projected to 2-D (fitted on all steps; the "
                     "learned starting point is left out, as the first step jumps far from it). Grey arrows point "
                     "where the classifier head reads each class (approximately, when the head reads y after a "
                     "LayerNorm); "
                     f"the {LABELLED} most probable at this step are named, the others on hover. "
                     "A path that heads towards one arrow and stops is a model making up its mind.",
                     fig.layout.title.text)
