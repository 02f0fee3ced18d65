"""Small plotly building blocks shared by the views."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

MIN_FONT = 14
CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 3}}


MAP = "map"      # layout.meta of a small map over an image: drawn without a toolbar covering it


def show(fig: go.Figure, key: str | None = None) -> None:
    """Draw a figure full-width, with plotly's own toolbar (PNG download included), except over maps."""
    config = CONFIG | {"displayModeBar": False} if fig.layout.meta == MAP else CONFIG
    st.plotly_chart(fig, width="stretch", config=config, key=key)


def compact_layout(height: int, title: str | None = None, **layout) -> dict:
    """``compact``'s layout as a plain dict, with ``layout`` added (for a figure written as a dict)."""
    # 14 px at the least, everywhere: read from the back of a classroom on a projector.
    compact = {"height": height, "margin": {"l": 10, "r": 10, "t": 44 if title else 10, "b": 10},
               "font": {"size": MIN_FONT}}
    if title:
        compact["title"] = {"text": title, "font": {"size": MIN_FONT + 2}}
    return layout | compact


def compact(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(compact_layout(height, title))
    return fig


def overlay(pixels: np.ndarray, values: np.ndarray, *, title: str, colorscale: str = "Inferno",
            zmin: float | None = None, zmax: float | None = None, zmid: float | None = None,
            opacity: float = 0.6, height: int = 300) -> go.Figure:
    """``values`` (any square grid: patches or pixels) drawn semi-transparent over the image."""
    size, cells = pixels.shape[0], values.shape[0]
    cell = size / cells
    fig = go.Figure(go.Image(z=pixels, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=values, x0=cell / 2 - 0.5, dx=cell, y0=cell / 2 - 0.5, dy=cell,
                             colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, opacity=opacity,
                             colorbar=dict(thickness=10), hovertemplate="%{z:.3g}<extra></extra>"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(meta=MAP)
    return compact(fig, height, title)


def upscale(grid: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a [g, g, ...] grid to [size, size, ...]."""
    factor = max(1, size // grid.shape[0])
    return grid.repeat(factor, 0).repeat(factor, 1)


def _marker(step: int) -> dict:
    return dict(type="line", x0=step, x1=step, xref="x", y0=0, y1=1, yref="paper",
                line=dict(color="black", dash="dot", width=1))


def step_marker(fig: go.Figure, step: int) -> go.Figure:
    """A dotted vertical line at the selected step (a plain shape: add_vline is slow to build)."""
    fig.add_shape(**_marker(step))
    return fig


def from_spec(validated: dict, step: int | None = None) -> go.Figure:
    """The figure written as the dict ``validated``, with a step marker when ``step`` is given, unvalidated.

    Building a go.Figure validates every property: over 100 ms for a chart of ten lines on the 2-core
    machine. A dict that the tests have checked against the validated build (tests/test_app.py) is
    wrapped as it is, and the marker is ``step_marker``'s own shape.
    """
    layout = dict(validated.get("layout", {}))
    if step is not None:
        layout["shapes"] = [*layout.get("shapes", ()), _marker(step)]
    return go.Figure({"data": validated.get("data", []), "layout": layout}, _validate=False)


def level_line_layout(y: float, text: str) -> dict:
    """``level_line``'s shape and label as layout entries (for a figure written as a dict)."""
    return {"shapes": [{"type": "line", "x0": 0, "x1": 1, "xref": "paper", "y0": y, "y1": y, "yref": "y",
                        "line": {"color": "grey", "dash": "dash", "width": 1}}],
            "annotations": [{"x": 0, "xref": "paper", "y": y, "yref": "y", "text": text, "showarrow": False,
                             "xanchor": "left", "yanchor": "bottom", "font": {"size": MIN_FONT, "color": "grey"}}]}


def level_line(fig: go.Figure, y: float, text: str) -> go.Figure:
    """A dashed horizontal reference line across the plot, labelled at its left end."""
    entries = level_line_layout(y, text)
    fig.add_shape(**entries["shapes"][0])
    fig.add_annotation(**entries["annotations"][0])
    return fig
