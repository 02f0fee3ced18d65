"""Attribution maps (captum) over the image: which pixels pushed the answer at a step."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from vitrm import ATTRIBUTION_METHODS as METHODS

from ..text import md
from . import figures


def attribution_figure(pixels: np.ndarray, result, height: int = 280, title: str | None = None) -> go.Figure:
    """Signed maps on a red-blue scale centred at zero; Saliency (a magnitude) on a heat scale."""
    values = result.map
    if result.method == "saliency":
        return figures.overlay(pixels, values, zmin=0, zmax=float(values.max()) or 1.0, colorscale="Hot",
                               opacity=0.7, height=height, title=title)
    bound = float(np.abs(values).max()) or 1.0
    return figures.overlay(pixels, values, zmin=-bound, zmax=bound, zmid=0, colorscale="RdBu_r", opacity=0.7,
                           height=height, title=title)


def draw_attributions(results: list, pixels: np.ndarray, class_names, step: int) -> None:
    cols = st.columns(max(1, min(4, len(results))))
    for i, result in enumerate(results):
        with cols[i % len(cols)]:
            st.markdown(f"**{METHODS[result.method]}** for {md(class_names[result.target])}: {result.seconds:.2f} s")
            figures.show(attribution_figure(pixels, result))
    st.caption(f"Red pixels pushed the model towards the class named above at step {step}, blue pixels away "
               "from it (Saliency shows only how sensitive the answer is to each pixel). Methods that agree "
               "point at real evidence; a map that lights up background is worth a second look.")


def draw_attribution_row(row: list, pixels: np.ndarray, class_names) -> None:
    if not row:
        return
    method = METHODS[row[0].method]
    cols = st.columns(len(row))
    for col, result in zip(cols, row):
        with col:
            st.markdown(f"step {result.step}")
            figures.show(attribution_figure(pixels, result, height=180))
    total = sum(r.seconds for r in row)
    st.caption(f"{method} for **{md(class_names[row[0].target])}** at each step ({total:.2f} s in all). If the "
               "evidence sharpens as recursion goes on, later maps concentrate on the object.")
