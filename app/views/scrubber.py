"""The recursion scrubber: what the model believes at the selected step, and how it got there."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from .. import derive, glossary
from ..text import md, plotly
from . import figures

PLAYING_LINE = "vitrm-playing"      # the key of the playing line's container (testkit/step_recorder.py reads it)
BAR_CELLS = 16
BAR_AXIS_END = 1.22          # the top-k axis goes past 100%: room for a full bar's label


def playing_text(step: int, steps: int, answer: str | None = None, trained: int | None = None) -> str:
    """Markdown: ``answer`` (markdown) when given, then the step Play shows, of ``steps``, as words and a bar;
    a step past ``trained`` (the step count the model was trained with) is named an extra step."""
    filled = round(BAR_CELLS * step / steps)
    line = f"▶ **Step {step} of {steps}** {'▰' * filled}{'▱' * (BAR_CELLS - filled)}"
    if trained and step > trained:
        line += f" extra step: trained with {trained}"
    return line if answer is None else f"{answer}\n\n{line}"


def draw_playing(step: int, steps: int, answer: str | None = None, trained: int | None = None) -> None:
    """While Play runs: the step, and the answer when given, as one element, which the browser draws whole."""
    with st.container(key=PLAYING_LINE):
        st.markdown(playing_text(step, steps, answer, trained))


def answer_text(p: np.ndarray, step: int, class_names, label: str | None) -> str:
    """Markdown: the top class at the step and its probability (``p`` [C]) as a heading, and whether it is right.
    A heading that starts the text: tests/test_app_hostile.py reads a heading after a line break as markup that
    escaped from an outside string."""
    top = int(p.argmax())
    text = f"#### Top class at step {step}: {md(class_names[top])}, {100 * p[top]:.2f}%"
    if label is None:
        return text
    return f"{text}\n\n{verdict_text(class_names[top] == label, step, label)}"


def verdict_text(right: bool, step: int, label: str | None = None) -> str:
    """Markdown: right or wrong at the step, in colour; naming the true class ``label`` when wrong and given."""
    if right:
        return f":green[right at step {step}]"
    return f":red[wrong at step {step}: the true class is {md(label)}]" if label else f":red[wrong at step {step}]"


def draw_prediction(probs: np.ndarray, step: int, class_names, label: str | None,
                    controls: Callable[[], None] | None = None, playing: bool = False) -> None:
    """The headline: top class and its probability at the step (probs [S, C]), under ``controls()`` when given.

    The controls (the step slider) are drawn into a slot above the headline once its row exists, so that the
    slider and the answer are the two last and next messages to the browser: with anything between them, the
    browser can paint the new slider beside the old answer. While ``playing`` there is no slider (the controls
    say so), and the step and the answer are one element (``draw_playing``): no frame can pair two steps, so
    the order of the messages no longer matters.
    """
    p = probs[step - 1]
    top = int(p.argmax())
    if playing:
        if controls is not None:
            controls()
        draw_playing(step, len(probs), answer_text(p, step, class_names, label))
        return
    slot = st.container()
    cols = st.columns(3)
    if controls is not None:
        with slot:
            controls()
    cols[0].metric(f"Top class at step {step}", md(class_names[top]))
    cols[1].metric("Probability", f"{100 * p[top]:.2f}%")
    if label is not None:
        right = class_names[top] == label
        cols[2].metric("True class", md(label), help=f"The model is {'right' if right else 'wrong'} at step {step}.")
        cols[2].markdown(verdict_text(right, step))


# The scrubber's charts are written as plain plotly dicts, not built through plotly's validating API:
# validation cost more than everything else a new image's first page does (about 0.5 s for the four
# charts on the 2-core machine), and a dict is cheap enough to write again on every step, so nothing
# is cached. tests/test_app.py checks that each dict draws exactly what the validated build draws.
PLAY_INTERVAL = 0.8      # seconds per step while the scrubber plays (bench/browser_speed.py reads it)
LINES = "lines+markers"
LEGEND_ENTRY = 25         # px a legend entry takes at 14 px type


def _steps_axis(count: int) -> dict:
    return {"title": {"text": "step"}, **({"dtick": 1} if count <= 20 else {})}


def top_k_figure(p: np.ndarray, class_names, k: int) -> figures.SpecFigure:
    return figures.from_spec(_top_k_spec(p, tuple(class_names), k))


def _top_k_spec(p: np.ndarray, class_names: tuple[str, ...], k: int) -> dict:
    order = np.argsort(p)[::-1][:k][::-1]
    # Labels outside the bars, on an axis with room for them past 100%: inside a short bar a label was shrunk or,
    # at the 14 px minimum, cut off at the plot's edge (".2%"; tests/test_browser_classroom.py).
    bars = {"type": "bar", "x": p[order], "y": [plotly(class_names[i]) for i in order], "orientation": "h",
            "text": [f"{100 * v:.1f}%" for v in p[order]], "textposition": "outside", "cliponaxis": False,
            "marker": {"color": "#4c78a8"}}
    return {"data": [bars], "layout": figures.compact_layout(
        260, f"Top {k} classes", xaxis={"range": [0, BAR_AXIS_END], "tickvals": [0, 0.25, 0.5, 0.75, 1],
                                         "tickformat": ".0%", "title": {"text": "probability"}})}


def class_lines_figure(probs: np.ndarray, step: int | None, class_names) -> figures.SpecFigure:
    return figures.from_spec(_class_lines_spec(probs, tuple(class_names)), step)


MAX_CLASS_LINES = 20      # more lines than this are the most probable classes, and the title says so


def _class_lines_spec(probs: np.ndarray, class_names: tuple[str, ...]) -> dict:
    steps = np.arange(1, len(probs) + 1)
    shown = range(len(class_names))
    title = "Every class's probability, step by step"
    if len(class_names) > MAX_CLASS_LINES:
        # A line per class of 100,000 classes made a 27 MB chart, and the first page took minutes to build and the
        # browser tab stopped answering: the classes that ever come nearest to being the answer are the story.
        shown = sorted(np.argsort(probs.max(0))[::-1][:MAX_CLASS_LINES])
        title = (f"The {MAX_CLASS_LINES} most probable of {len(class_names):,} classes (by their highest probability "
                 "at any step), step by step")
    lines = [{"type": "scatter", "x": steps, "y": probs[:, c], "mode": LINES, "name": plotly(class_names[c]),
              "hovertemplate": "%{fullData.name}: %{y:.3f} at step %{x}<extra></extra>"}
             for c in shown]
    # Tall enough for a legend entry per class (25 px each) up to 20 classes, beside the title and the toolbar's row
    # (100 px): at 300 px, and at 64 + 25 px a class, the legend of ten classes scrolled, its last entry cut off at
    # 1366 px (tests/test_browser_classroom.py).
    height = max(300, 100 + LEGEND_ENTRY * min(len(lines), MAX_CLASS_LINES))
    return {"data": lines, "layout": figures.compact_layout(
        height, title, xaxis=_steps_axis(len(probs)), yaxis={"title": {"text": "probability"}, "range": [0, 1]})}


def halting_figure(halt: np.ndarray, step: int | None, stop: int | None) -> figures.SpecFigure:
    return figures.from_spec(_halting_spec(halt, stop), step)


def _halting_spec(halt: np.ndarray, stop: int | None) -> dict:
    steps = np.arange(1, len(halt) + 1)
    data = [{"type": "scatter", "x": steps, "y": halt, "mode": LINES, "name": "halting probability",
             "line": {"color": "#54a24b"}}]
    if stop is not None:
        data.append({"type": "scatter", "x": [stop], "y": [halt[stop - 1]], "mode": "markers",
                     "name": "would stop here", "marker": {"size": 14, "symbol": "star", "color": "#e45756"}})
    return {"data": data, "layout": figures.compact_layout(
        260, "Halting output, step by step",
        **figures.level_line_layout(derive.HALT_THRESHOLD, f"threshold {derive.HALT_THRESHOLD}"),
        xaxis=_steps_axis(len(halt)), yaxis={"title": {"text": "halting output"}, "range": [0, 1]},
        showlegend=False)}


def updates_figure(y_update: np.ndarray, z_update: np.ndarray, step: int | None) -> figures.SpecFigure:
    return figures.from_spec(_updates_spec(y_update, z_update), step)


def _updates_spec(y_update: np.ndarray, z_update: np.ndarray) -> dict:
    steps = np.arange(1, len(y_update) + 1)
    data = [{"type": "scatter", "x": steps, "y": y_update, "mode": LINES, "name": "‖Δy‖ (answer)"},
            {"type": "scatter", "x": steps, "y": z_update, "mode": LINES, "name": "RMS ‖Δz‖ (latents)"}]
    return {"data": data, "layout": figures.compact_layout(
        260, "How much each step changes y and z", xaxis=_steps_axis(len(steps)),
        yaxis={"title": {"text": "size of the update"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.3})}


def model_answers_text(rows: list[dict]) -> str | None:
    """Markdown for the answer area: the loaded models' answers, each at its own trained N, given as ``rows`` of
    {name, step, top, probability (text), unusual (True, False, or None without a check)}, focus model first.
    One line when they agree; side by side (``draw_model_answers``) when they do not. None for a single model."""
    if len(rows) < 2:
        return None
    if len({r["top"] for r in rows}) == 1:
        return (f"All {len(rows)} loaded models answer **{md(rows[0]['top'])}** at the step count each was trained "
                "with: " + ", ".join(f"{md(r['name'])} at step {r['step']} ({r['probability']})" for r in rows) + ".")
    return None


def model_answer_cell(row: dict) -> str:
    flag = {True: ":orange[:material/warning: probably none of its classes]",
            False: ":grey[looks like its training images]", None: ""}[row["unusual"]]
    return f"{md(row['name'])}, step {row['step']}  \n**{md(row['top'])}** {row['probability']}  \n{flag}"


def draw_model_answers(rows: list[dict]) -> None:
    """Every loaded model's answer, each at its own trained N and with its own out-of-classes flag: side by side
    when they disagree, one line when they agree (``model_answers_text``)."""
    agreed = model_answers_text(rows)
    if agreed is not None:
        st.caption(agreed)
        return
    if len(rows) < 2:
        return
    st.markdown("**The loaded models disagree**, each read at the step count it was trained with:")
    for column, row in zip(st.columns(len(rows)), rows):
        column.markdown(model_answer_cell(row))


def draw_step(probs: np.ndarray, step: int, class_names, label: str | None, notes: list[str],
              top_k: int = 5, controls: Callable[[], None] | None = None, playing: bool = False,
              after_answer: Callable[[], None] = lambda: None) -> None:
    """What changes with the step: the headline, the bars at the step, and ``notes`` (sentences on the step).

    ``probs`` [N, C]. Drawn in the page's step fragment. A chart that changes costs the browser a redraw (0.1 to
    0.25 s each on the 2-core machine, more than the server's whole run), so only the bars are here; the charts
    over all steps are in ``draw_overview``, drawn once per image and N, with no moving step marker.
    """
    draw_prediction(probs, step, class_names, label, controls, playing)
    after_answer()
    left, right = st.columns([2, 3])
    with left:
        figures.show(top_k_figure(probs[step - 1], class_names, min(top_k, len(class_names))))
    with right:
        st.caption(f"The bars are the model's belief after step {step}; the charts below show every step at once.")
        for note in notes:
            glossary.caption(note)


def draw_overview(table: Callable[[], pd.DataFrame], updates: tuple[np.ndarray, np.ndarray], probs: np.ndarray,
                  halt: np.ndarray | None, class_names, trained: int, file_stem: str) -> None:
    """What the steps did as a whole, the same at every step: ``updates`` the sizes of y's and z's updates [N],
    ``probs`` [N, C], ``halt`` [N] or None; the charts mark the ``trained`` step count. ``table`` makes
    ``derive.per_step_table`` for steps 1..N, for the CSV download: only on a click (a table of every class's
    probability at every step, built in every run of every session, was a tenth of a new visitor's page)."""
    mark = trained if 1 < trained <= len(probs) else None
    changes = derive.prediction_changes(probs, class_names)
    if changes:
        st.markdown("**The top prediction changed:** " + "; ".join(md(change, None) for change in changes))
    else:
        st.markdown(f"**The top prediction never changed** over {len(probs)} steps: "
                    f"{md(class_names[int(probs[0].argmax())])} from step 1.")
    left, right = st.columns([3, 2])
    with left:
        figures.show(class_lines_figure(probs, mark, class_names))
        st.caption("How the belief moved over all steps" + (f" (dotted: the {trained} steps it was trained with)"
                   if mark else "") + ". A line that keeps rising after the trained step count means more "
                   "thinking still helps.")
    with right:
        if halt is None:
            st.info("This model is not recursive, so it has no halting head: it always answers in one step.")
        else:
            stop = derive.halting_step(halt)
            figures.show(halting_figure(halt, mark, stop))
            glossary.caption(
                f"The halting head estimates whether the current answer is right. It would stop at step {stop} "
                f"(the first step at or above {derive.HALT_THRESHOLD})." if stop else
                f"The halting head never reaches {derive.HALT_THRESHOLD} within {len(halt)} steps, so it would "
                "run them all. This is an analysis: the scrubber always shows the step you choose.", "halting")
    left, right = st.columns([3, 2])
    with left:
        updates = updates_figure(*updates, mark)
        figures.show(updates)
    with right:
        glossary.caption("Big updates mean the model is still changing its mind; updates that shrink towards zero "
                         "mean its thinking has settled.", *(t["name"] for t in updates.spec["data"]))
        # Deferred: the CSV is made on a click, not on every run, and clicking reruns nothing.
        st.download_button("Download per-step results (CSV)", lambda: table().to_csv(index=False).encode(),
                           file_name=f"{file_stem}-per-step.csv", mime="text/csv", on_click="ignore")
