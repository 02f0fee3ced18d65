"""What the model cannot tell you: the classes it knows, images unlike all of them, and what its
halting output has been worth."""

from __future__ import annotations

import math

import streamlit as st

from .. import text
from ..reliability import Reliability

HALT_NAME = "halting output"      # not "P(answer is right)": it is a trained guess, not a promise


def draw_known_classes(model_name: str, class_names) -> None:
    names = ", ".join(text.md(c) for c in class_names)
    st.caption(f"{text.md(model_name)} knows only these {len(class_names)} classes: **{names}**. A picture of "
               "anything else still gets one of them, so an answer is only as good as the picture's fit to them.")


def is_unusual(score: float | None, facts: dict | None) -> bool | None:
    """Whether the rule flags the image (its score above the threshold); None without a score."""
    return None if score is None or facts is None else score > facts["threshold"]


def draw_unusual(score: float | None, facts: dict | None, problem: str | None, class_count: int,
                 compact: bool = False) -> None:
    """The out-of-distribution warning, with its rule, threshold and measured false alarms; ``compact`` (classroom
    mode, beside the answer): the warning alone, and nothing when the image is not flagged."""
    if problem:
        st.warning(f"The out-of-distribution check is off: {text.md(problem, limit=None)}")
        return
    if score is None or facts is None:
        return
    threshold = facts["threshold"]
    rates = (f"The threshold {threshold:.0f} was chosen on the {facts['val_images']:,} validation images, "
             f"{facts['val_false_alarm']:.1%} of which it flags (false alarms)")
    if "test_false_alarm" in facts:
        rates += f"; on the test set it flags {facts['test_false_alarm']:.1%}"
    if "uniform_noise_flagged" in facts:
        rates += f"; of images of uniform noise it flags {facts['uniform_noise_flagged']:.0%}"
    if facts.get("outside_images"):
        caught = round(facts["outside_flagged"] * facts["outside_images"])
        rates += f", and {caught} of {facts['outside_images']} photos of things outside the classes"
    rule = f"Rule: {text.md(facts['rule'], limit=text.MAX_MESSAGE)}. {rates}."   # ood.json's text: a stranger's
    if is_unusual(score, facts):
        # "This answer", not "the answer below": in classroom mode the warning sits under the answer.
        st.warning(f"**This image is probably none of the {class_count} classes** (score {score:.0f}, above "
                   f"{threshold:.0f}). This answer is the closest of the classes it knows, not a recognition.",
                   icon=":material/warning:")
        if not compact:
            st.caption(rule)
    elif compact:
        return
    else:
        st.caption(f"Out-of-distribution check: score {score:.0f}, under the threshold {threshold:.0f} (the image "
                   f"looks like the training images). {rule}")


def halting_note(value: float, step: int, reliability: Reliability | None) -> str:
    """One sentence on what the halting output at ``step`` has been worth on the test set."""
    if reliability is None or reliability.images == 0 or math.isnan(reliability.right):
        return (f"The {HALT_NAME} at step {step} is {value:.2f}: a trained guess that the answer is right, "
                "not a probability (no evaluated test set to say how often it holds).")
    return (f"The {HALT_NAME} at step {step} is {value:.2f}: a trained guess that the answer is right, not a "
            f"promise. On the test set, of the {reliability.images:,} images whose output at step {step} was "
            f"{reliability.low:.1f}-{reliability.high:.1f}, {reliability.right:.0%} were answered right.")
