"""Attention at one step: where the answer token looks, every token-to-token weight, and rollout."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vitrm import AttentionMaps

from .. import derive, glossary
from . import figures


def answer_figure(pixels, weights: np.ndarray, grid: int, step: int, largest: float) -> go.Figure:
    """``largest``: the largest weight at any step, so the colours mean the same at every step."""
    return figures.overlay(pixels, weights.reshape(grid, grid), zmin=0, zmax=max(largest, 1e-6),
                           colorbar_title="weight<br>(scale of<br>all steps)",
                           title=f"Answer token's attention, step {step}")


def matrix_figure(matrix: np.ndarray, labels: list[str], title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", zmin=0,
                               hovertemplate="%{y} attends to %{x}: %{z:.3f}<extra></extra>",
                               colorbar=dict(thickness=10)))
    fig.update_yaxes(autorange="reversed", title="query (row)", tickfont=dict(size=figures.MIN_FONT))
    fig.update_xaxes(title="key (column)", tickfont=dict(size=figures.MIN_FONT))
    return figures.compact(fig, 420, title)


def percent_ticks(high: float, count: int = 5) -> tuple[list[float], list[str]]:
    """Round ticks from 0 to ``high`` (a share), written as percentages with as many decimals as it takes to tell
    every tick apart: plotly's own ".0%" wrote "1%, 1%, 2%" on a scale up to 2.5%."""
    high = max(float(high), 1e-6)
    raw = high / (count - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    values = [i * step for i in range(int(high / step + 1e-9) + 1)]
    for decimals in range(6):
        texts = [f"{100 * v:.{decimals}f}%" for v in values]
        if len(set(texts)) == len(texts):
            break
    return values, texts


def rollout_figure(pixels, shares: dict, grid: int, step: int) -> go.Figure:
    """Each patch's share of the new answer, from 0 (rolling out every step for one scale costs too much)."""
    high = float(shares["x"].max())
    fig = figures.overlay(pixels, shares["x"].reshape(grid, grid), zmin=0, zmax=high,
                          colorbar_title="share of<br>the answer", title=f"Rollout over step {step}")
    values, texts = percent_ticks(high)
    fig.update_traces(colorbar=dict(tickvals=values, ticktext=texts), selector=dict(type="heatmap"))
    return fig


def draw_attention(maps: AttentionMaps, pixels: np.ndarray, grid: int, step: int, key: str) -> None:
    """``maps`` for one image's trace; ``key`` keeps this view's own controls apart per model."""
    layers, heads = maps.answer.shape[1], maps.answer.shape[3]
    calls = derive.block_calls(maps)
    c1, c2, c3 = st.columns(3)
    layer = c1.selectbox("Layer", range(layers), format_func=lambda i: f"layer {i + 1} of {layers}",
                         key=f"att_layer::{key}")
    head_choice = c2.selectbox("Head", ["mean over heads"] + [f"head {h + 1}" for h in range(heads)],
                               key=f"att_head::{key}")
    call = c3.selectbox("Block call for the matrix", range(len(calls)), format_func=lambda i: calls[i],
                        index=len(calls) - 1, key=f"att_call::{key}",
                        help=glossary.help_for("block call", *calls))
    head = None if head_choice == "mean over heads" else int(head_choice.split()[-1]) - 1

    left, right = st.columns(2)
    with left:
        largest = max(float(derive.answer_attention(maps, s, layer, head, 0).max())
                      for s in range(1, maps.answer.shape[0] + 1))
        figures.show(answer_figure(pixels, derive.answer_attention(maps, step, layer, head, 0), grid, step,
                                   largest))
        glossary.caption(f"Layer {layer + 1}, {head_choice}. Where the answer token y looks when it commits to an "
                         "answer at this step: its attention over the latent patch tokens z, laid over the image.")
        shares = derive.step_rollout(maps, step, 0, head)
        figures.show(rollout_figure(pixels, shares, grid, step))
        glossary.caption(f"Attention rollout follows attention (plus the residual path) through all "
                         f"{len(calls)} block calls of the step, back to its inputs. The new answer draws "
                         f"{100 * shares['y']:.0f}% on the previous answer, {100 * shares['x'].sum():.0f}% on the "
                         f"image patches (shown) and {100 * shares['z'].sum():.0f}% on the previous latents.")
    with right:
        matrix = derive.call_attention(maps, step, call, 0, head)[layer].numpy()
        figures.show(matrix_figure(matrix, derive.token_labels(maps, call),
                                   f"Token to token: {calls[call].split(':')[0]}"))
        glossary.caption(f"Layer {layer + 1}, {head_choice}. Row = the token that is looking, column = the token it "
                         "looks at; each row sums to 1. "
                         "y is the answer token, x the image patches, z the latent patches.")
