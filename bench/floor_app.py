"""The floor for bench/browser_speed.py: the least a page like Explore's costs on this machine.

    streamlit run bench/floor_app.py

A step slider with the headline ("Top class at step K") and a bar chart that follow it in one
fragment, and a chart over all steps outside it, as on the Explore page, but no model, no data and
nothing else on the page. What it takes to start, draw and redraw is what Streamlit and Chromium
alone cost here, so the benchmark prints it beside the app's own figures.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

STEPS = 16
CLASSES = [f"class {i}" for i in range(10)]
PROBS = np.random.default_rng(0).dirichlet(np.ones(len(CLASSES)), STEPS)


@st.fragment
def step_part() -> None:
    step = st.slider("Recursion step", min_value=1, max_value=STEPS, value=STEPS // 2, key="step")
    p = PROBS[step - 1]
    st.metric(f"Top class at step {step}", CLASSES[int(p.argmax())])
    st.plotly_chart(go.Figure({"data": [{"type": "bar", "x": p.tolist(), "y": CLASSES, "orientation": "h"}],
                               "layout": {"height": 260}}, _validate=False))


step_part()
st.plotly_chart(go.Figure({"data": [{"type": "scatter", "y": PROBS[:, c].tolist(), "name": name}
                                    for c, name in enumerate(CLASSES)], "layout": {"height": 300}}, _validate=False))
