"""Classroom mode: the image, the answer, the probability chart and the step slider on one 1366x768 screen,
with a sentence per step saying what changed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from .. import classroom, derive, glossary, text
from . import figures, scrubber

TOGGLE = "classroom"
IMAGE_SIDE = 256          # the model's input, enlarged (nearest neighbour) for the back row
CHART_HEIGHT = 200        # the slider, the answer and this chart fit beside the image on a 1366x768 screen


@st.cache_resource(max_entries=16, show_spinner=False)
def demo_marks(model_key: str, mtime: float, files: tuple[str, ...], last: int,
               _predictions: pd.DataFrame) -> Mapping[str, str]:
    """Shared by every session, read-only (a resource: st.cache_data would copy it on every page run)."""
    return MappingProxyType(classroom.demo_picks(_predictions, files, last))


def draw_toggle() -> bool:
    return st.toggle("Classroom mode", key=TOGGLE,
                     help="A projector layout (1366x768): the image, the answer, the probabilities and the step "
                          "slider on one screen, with a sentence per step. Gallery images marked ★ are demo "
                          "picks, where recursion visibly changes the answer.")


def draw(pixels: np.ndarray, probs: np.ndarray, halt: np.ndarray | None, class_names, label: str | None, step: int,
         draw_controls: Callable[[], None], why: str | None, playing: bool = False) -> None:
    """``probs`` [N, C] and ``halt`` [N] over the N steps run; ``draw_controls`` draws N, the slider and Play.

    Everything is prepared, and the image drawn, before the controls, so that the slider and the answer are
    drawn back to back. While ``playing`` the step and the answer are one element (scrubber.draw_playing), as
    two could be painted a step apart.
    """
    p = probs[step - 1]
    top = int(p.argmax())
    chart = scrubber.top_k_figure(p, class_names, min(5, len(class_names)))
    # Bar labels keep the 14 px minimum: plotly would otherwise shrink a label to fit inside a short bar.
    chart.update_layout(height=CHART_HEIGHT, uniformtext=dict(minsize=figures.MIN_FONT, mode="show"))
    left, right = st.columns([2, 3])
    with left:
        big = Image.fromarray(pixels).resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.NEAREST)
        verdict = "right" if class_names[top] == label else "wrong"
        st.image(big, width=IMAGE_SIDE, caption=(f"true class: {text.plain(label)} (the model is {verdict} at "
                                                 f"step {step})" if label else None))
        if why:
            st.caption(text.md(f"★ Demo pick: {why}.", limit=None))
    with right:
        if playing:
            draw_controls()        # one element holds the step and the answer: their order does not matter
            scrubber.draw_playing(step, len(probs), scrubber.answer_text(p, step, class_names, None))
        else:
            slot = st.container()
            # Two metrics, not the scrubber's three: the true class sits under the image, and the row stays one
            # line high, so the chart below still fits the screen.
            answer, probability = st.columns(2)
            with slot:
                draw_controls()    # into the slot above, once the answer's row exists: slider and answer adjacent
            answer.metric(f"Top class at step {step}", text.md(class_names[top]))
            probability.metric("Probability", f"{100 * p[top]:.2f}%", help=glossary.tip("confidence"))
        figures.show(chart)
    # The sentence names classes, which come from the checkpoint: shown as text, never as markdown.
    st.info(text.md(classroom.narrate(probs, step, class_names, halt, derive.HALT_THRESHOLD), limit=None),
            icon=":material/record_voice_over:")
    st.caption("Each step runs the same small block again over the model's memory.",
               help=glossary.tip("recursion step", "answer token y", "latent z", "halting output"))
