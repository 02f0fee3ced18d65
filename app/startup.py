"""A fresh server's first page: something to look at, and the browser's code on its way, while PyTorch imports.

A fresh server's first page run imports PyTorch, pandas and Plotly: about 2.3 s on the 2-core machine. Meanwhile
``starting()`` draws a line saying so and one empty chart, so that the browser loads Plotly's JavaScript (about a
second), and, hidden, one element of each kind the first page draws: Streamlit splits its frontend into about a
hundred pieces, each fetched when first met, and these load during the imports rather than one after another as
the page arrives (tests/test_startup.py checks that the hidden set covers the first page).
"""

import sys
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

WARM_UP = "vitrm-warm-up"          # the hidden container's key (Streamlit gives it the class st-key-<key>)


@contextmanager
def starting():
    """Around the first page's imports: on a fresh server, the note, the empty chart and the hidden elements."""
    if "vitrm" in sys.modules:      # imported (or being imported, and then the import waits for it)
        yield
        return
    # Plotly looks numpy, PIL and pandas up in sys.modules rather than importing them: imported first, a chart
    # never meets one half made by another session's import (tests/test_concurrency.py).
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import PIL.Image  # noqa: F401
    import plotly.graph_objects as go
    slot = st.empty()
    with slot.container():
        st.caption("Starting: loading PyTorch and the models (once per server start)…")
        st.plotly_chart(go.Figure(layout={"height": 24, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
                                          "xaxis": {"visible": False}, "yaxis": {"visible": False},
                                          "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}),
                        config={"staticPlot": True, "displayModeBar": False})
        st.html(f"<style>.st-key-{WARM_UP} {{display: none;}}</style>")
        with st.container(key=WARM_UP):
            for element in (st.multiselect, st.radio, st.selectbox):
                element(f"warm-up {element.__name__}", ["-"], disabled=True)
            for element in (st.text_input, st.toggle, st.number_input, st.button):
                element(f"warm-up {element.__name__}", disabled=True)
            st.slider("warm-up slider", 0, 1, disabled=True)
            st.download_button("warm-up download", b"", disabled=True)
            st.metric("warm-up metric", "-")
            st.image(str(Path(__file__).with_name("static") / "favicon.png"))
            for container in (st.popover, st.expander):
                with container(f"warm-up {container.__name__}"):
                    st.caption("-")
    try:
        yield
    finally:
        slot.empty()
