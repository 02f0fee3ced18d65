"""The first page of a fresh server: the imports begun before anyone visits, something to look at while they
finish, and the chart library on its way.

A fresh server must import PyTorch, pandas and Plotly before it can draw a page: about 2.3 s of work on the
2-core machine. ``preloading`` (app/main.py's start-up hook) starts those imports in a thread as soon as the
server listens, while the first browser is still loading the page's JavaScript; the first page run then waits
only for what is left (README, Speed: 0.2 s off the cold start's median). The thread runs at a lower CPU
priority, to take the cycles the browser leaves rather than slow its loading of the page (measured both ways:
the same median within noise, a narrower spread).

While a page waits for those imports, ``starting()`` draws a line saying what is happening and one empty chart,
so that the browser loads Plotly's JavaScript (about a second) meanwhile. The browser also fetches and compiles
the code of each kind of element (a slider, a table, ...) only when it first meets one: Streamlit splits its
frontend into about a hundred pieces. ``starting()`` therefore also draws one element of each kind the first
page shows, hidden, so that those pieces load during the imports too rather than one after another as the page
arrives (tests/test_startup.py checks that the hidden set covers the first page).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import streamlit as st

# Imported before a page draws anything: Plotly looks these up in sys.modules (to recognise arrays and frames)
# rather than importing them, so a page drawing its first chart while another thread is still importing one finds
# it half made (tests/test_concurrency.py: "partially initialized module 'pandas' has no attribute 'Series'").
DRAWING_IMPORTS = ("numpy", "PIL.Image", "pandas", "plotly.graph_objects")
# Then the rest of what app/script.py imports inside ``starting()``, with all they pull in: every heavy import of a
# first page (PyTorch above all). tests/test_startup.py checks that this covers the script.
FIRST_PAGE_IMPORTS = DRAWING_IMPORTS + ("vitrm", "app.checkpoints", "app.session", "app.text")

# Higher is nicer: the preloading thread yields the CPU to the browser and to the pages being served.
PRELOAD_NICENESS = 10

# One thread at a time imports each set: twenty sessions opening a fresh server at once would otherwise import the
# same modules in different orders (one PyTorch, another Plotly, each reaching pandas), and Python then hands a
# thread a partially initialized module. The first to come (the server's preloading thread, or a session) imports;
# the others wait for it. A lock per set, so that a page waits for the drawing set alone; never two sets at once,
# as each thread imports the second only after the first is done.
_ONCE = {modules: (threading.Lock(), threading.Event()) for modules in (DRAWING_IMPORTS, FIRST_PAGE_IMPORTS)}

log = logging.getLogger("vitrm.app")


def imported(modules: tuple[str, ...]) -> bool:
    return _ONCE[modules][1].is_set()


def import_once(modules: tuple[str, ...]) -> None:
    """Import ``modules`` (DRAWING_IMPORTS or FIRST_PAGE_IMPORTS), once per process: a caller that comes while
    another imports them waits for it."""
    importing, done = _ONCE[modules]
    if done.is_set():
        return
    with importing:
        if not done.is_set():
            for name in modules:
                importlib.import_module(name)
            done.set()


@asynccontextmanager
async def preloading(_app):
    """The server's start-up hook: import the first page's modules in a background thread, now."""
    threading.Thread(target=_preload, name="vitrm-preload", daemon=True).start()
    yield


def _preload() -> None:
    started = time.perf_counter()
    _lower_this_threads_priority()
    try:
        import_once(DRAWING_IMPORTS)        # first, and on its own: a page that arrives meanwhile may draw after it
        import_once(FIRST_PAGE_IMPORTS)
    except Exception:     # the first page's own import raises it again, where the visitor sees it
        log.exception("importing the app's modules at server start failed")
        return
    log.info("imported the app's modules at server start in %.1f s", time.perf_counter() - started)


def _lower_this_threads_priority() -> None:
    # Linux only: there a thread id names one thread to setpriority; elsewhere it could name another process.
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PRELOAD_NICENESS)
        except OSError:
            pass


@contextmanager
def starting():
    """Around the first page's imports: once they are done, nothing; before, the note and the empty chart while
    they finish (or run, where no server preloads them: AppTest)."""
    if imported(FIRST_PAGE_IMPORTS):
        yield
        return
    import_once(DRAWING_IMPORTS)
    with _shown_while_loading():
        import_once(FIRST_PAGE_IMPORTS)
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
