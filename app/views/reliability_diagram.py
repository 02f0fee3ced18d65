"""The reliability diagram of one model at one step: how often answers were right against how sure they were.

Drawn beside ECE vs N on the Dataset analysis page (Calibration), from ``app.reliability.calibration_bins``:
the bins are the ones the ECE is computed over, so the gaps shown add up to the ECE at that step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from .. import glossary
from . import figures


def figure(diagram: pd.DataFrame, step: int, ece: float) -> go.Figure:
    """Bars: the share right in each confidence bin (width: the bin); the diagonal: what perfect calibration gives."""
    filled = diagram[diagram["images"] > 0]
    centres = (filled["low"] + filled["high"]) / 2
    fig = go.Figure(go.Bar(x=centres, y=filled["accuracy"], width=filled["high"] - filled["low"], name="share right",
                           customdata=np.stack([filled["images"], filled["confidence"], filled["low"],
                                                filled["high"]], axis=1),
                           marker=dict(color="#4c78a8", line=dict(color="white", width=1)),
                           hovertemplate="confidence %{customdata[2]:.0%}-%{customdata[3]:.0%}: %{y:.1%} right of "
                                         "%{customdata[0]:,} images (mean confidence %{customdata[1]:.1%})"
                                         "<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(dash="dash", color="#888")))
    fig.update_xaxes(title="confidence of the answer", range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title="share answered right", range=[0, 1], tickformat=".0%")
    fig = figures.compact(fig, 340, f"Reliability at step {step} (ECE {ece:.3f})")
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, x=0, xanchor="left"))
    return fig


def draw(diagram: pd.DataFrame, step: int, ece: float) -> None:
    figures.show(figure(diagram, step, ece))
    st.caption("Each bar is the test images whose answer had a confidence in that range: its height is how many "
               "of them were right. Bars under the diagonal: the model was more sure than right at this step.",
               help=glossary.tip("confidence", "ECE"))
