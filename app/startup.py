"""The first page of a fresh server: something to look at while PyTorch loads, and the chart library on its way.

A fresh server imports PyTorch on its first page run (2-2.5 s on the 2-core machine), and only then can the
page draw its first chart, at which point the browser starts fetching and compiling Plotly's JavaScript (about
a second more). ``starting()`` draws a line saying what is happening and one empty chart before that import, so
that the browser loads Plotly while the server loads PyTorch: a fresh server's first page was drawn about a
second sooner (bench/browser_speed.py, cold start). Imports nothing heavy: it runs before torch is imported.

The browser also fetches and compiles the code of each kind of element (a slider, a table, ...) only when it
first meets one: Streamlit splits its frontend into about a hundred pieces. ``starting()`` therefore also draws
one element of each kind the first page shows, hidden, so that those pieces load during the import too rather
than one after another as the page arrives (on the 2-core machine they took about a second after the import,
mostly overlapped by the server's first run: README, Speed; tests/test_startup.py checks that the hidden set
covers the first page).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

# One session at a time imports: twenty sessions opening a fresh server at once would otherwise import the same
# modules in different orders (one PyTorch, another Plotly, each reaching pandas), and Python then hands a
# thread a partially initialized module (tests/test_concurrency.py saw "partially initialized module 'pandas'").
# The first session imports; the others wait here for it, then find everything imported.
_IMPORTING = threading.Lock()


@contextmanager
def starting():
    """Around the app's heavy imports: the note and the empty chart while they run, in a fresh process only."""
    with _IMPORTING:
        if "torch" in sys.modules:          # imported already: the imports are free
            yield
            return
        with _shown_while_loading():
            yield


@contextmanager
def _shown_while_loading():
    import plotly.graph_objects as go

    slot = st.empty()
    with slot.container():
        st.caption("Starting: loading PyTorch and the models (once per server start)…")
        blank = go.Figure(layout={"height": 24, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
                                  "xaxis": {"visible": False}, "yaxis": {"visible": False},
                                  "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"})
        st.plotly_chart(blank, config={"staticPlot": True, "displayModeBar": False})
        _load_element_code()
    try:
        yield
    finally:
        slot.empty()


WARM_UP = "vitrm-warm-up"          # the hidden container's key (Streamlit gives it the class st-key-<key>)


def _load_element_code() -> None:
    """One element of each kind the first page draws, in a hidden container, none of them usable."""
    st.html(f"<style>.st-key-{WARM_UP} {{display: none;}}</style>")
    with st.container(key=WARM_UP):
        st.multiselect("warm-up multiselect", ["-"], disabled=True)
        st.text_input("warm-up text input", disabled=True)
        st.toggle("warm-up toggle", disabled=True)
        st.radio("warm-up radio", ["-"], disabled=True)
        st.selectbox("warm-up select box", ["-"], disabled=True)
        st.number_input("warm-up number input", disabled=True)
        st.slider("warm-up slider", 0, 1, disabled=True)
        st.button("warm-up button", disabled=True)
        st.download_button("warm-up download", b"", disabled=True)
        st.metric("warm-up metric", "-")
        st.image(str(Path(__file__).with_name("static") / "favicon.png"))
        with st.popover("warm-up popover"):
            st.caption("-")
        with st.expander("warm-up expander"):
            st.caption("-")
        st.table({"warm-up": ["-"]})          # last: a table imports pandas
