"""Classroom mode: the image, the answer, the probability chart and the step slider on one 1366x768 screen,
with a sentence per step saying what changed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from .. import classroom, glossary, text
from . import figures, scrubber

TOGGLE = "classroom"
IMAGE_SIDE = 240          # the model's input, enlarged (nearest neighbour) for the back row
CHART_HEIGHT = 180        # everything fits a 1366x625 window (tests/test_browser_classroom.py)


@st.cache_resource(max_entries=16, show_spinner=False)
def demo_marks(model_key: str, mtime: float, files: tuple[str, ...], last: int,
               _predictions: pd.DataFrame) -> Mapping[str, str]:
    """Shared by every session, read-only (a resource: st.cache_data would copy it on every page run)."""
    return MappingProxyType(classroom.demo_picks(_predictions, files, last))


def draw_toggle() -> bool:
    return st.toggle("Classroom mode", key=TOGGLE,
                     help="A presenter's layout that fits a 1366x768 projector: the image, the answer, the "
                          "probabilities, a sentence per step and Play on one screen, the other controls folded "
                          "away and the sidebar closed. Play tells the story from step 1 to the step count the "
                          "model was trained with, then the extra steps. Gallery images marked ★ are demo picks, "
                          "where recursion visibly changes the answer.")


def top_k_chart(p: np.ndarray, class_names) -> figures.SpecFigure:
    """The bars at a step, short and untitled (the answer above names the step), labels as the sentence writes
    them (``classroom.percent``) and kept at the 14 px minimum: plotly would otherwise shrink a label to fit
    inside a short bar."""
    chart = scrubber.top_k_figure(p, class_names, min(5, len(class_names)))
    chart.spec["layout"] |= {"height": CHART_HEIGHT, "title": None,
                             "margin": chart.spec["layout"]["margin"] | {"t": 10},
                             "uniformtext": {"minsize": figures.MIN_FONT, "mode": "show"}}
    return chart


def draw(pixels: np.ndarray, probs: np.ndarray, halt: np.ndarray | None, class_names, label: str | None, step: int,
         trained: int, draw_controls: Callable[[], None], why: str | None, playing: bool = False,
         beside_answer: Callable[[], None] = lambda: None, under_image: Callable[[], None] = lambda: None) -> None:
    """``probs`` [N, C] and ``halt`` [N] over the N steps run, ``trained`` the step count the model was trained
    with; ``draw_controls`` draws the slider and Play; ``beside_answer`` what belongs with the answer (the
    out-of-classes warning), ``under_image`` the other models' answers.

    Everything is prepared, and the image drawn, before the controls, so that the slider and the answer are
    drawn back to back. While ``playing`` the step and the answer are one element (scrubber.draw_playing), as
    two could be painted a step apart.
    """
    p = probs[step - 1]
    top = int(p.argmax())
    chart = top_k_chart(p, class_names)
    # The sentence names classes, which come from the checkpoint: shown as text, never as markdown.
    sentence = text.md(classroom.narrate(probs, step, class_names, halt, trained), limit=None)
    left, right = st.columns([2, 3])
    with left:
        big = Image.fromarray(pixels).resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.NEAREST)
        verdict = "right" if class_names[top] == label else "wrong"
        st.image(big, width=IMAGE_SIDE, caption=(f"true class: {text.plain(label)} (the model is {verdict} at "
                                                 f"step {step})" if label else None))
        if why:
            st.caption(text.md(f"★ Demo pick: {why}.", limit=None))
        under_image()
    with right:
        answer = f"{text.md(class_names[top])}, {classroom.percent(float(p[top]))}"
        if playing:
            draw_controls()        # one element holds the step and the answer: their order does not matter
            scrubber.draw_playing(step, len(probs), f"#### Top class at step {step}: {answer}", trained)
        else:
            slot = st.container()
            # Two metrics, not the scrubber's three: the true class sits under the image, and the row stays one
            # line high, so the chart below still fits the screen.
            answer_col, probability = st.columns(2)
            with slot:
                draw_controls()    # into the slot above, once the answer's row exists: slider and answer adjacent
            answer_col.metric(f"Top class at step {step}", text.md(class_names[top]))
            # The sentence below may name terms (the halting output): their meanings ride on this tooltip.
            probability.metric("Probability", classroom.percent(float(p[top])),
                               help=glossary.help_for(sentence, extra=glossary.tip("confidence")))
        beside_answer()
        st.info(sentence, icon=":material/record_voice_over:")
        figures.show(chart)
