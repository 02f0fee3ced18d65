"""Classroom mode: demo picks from predictions.csv, a sentence per step, and the one-screen layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_app import GALLERY, ROOT, TINY, app, lab, metrics, run, select_models  # noqa: F401 (fixtures)

import vitrm
from app import classroom, glossary
from app.text import md

demo_picks = classroom.demo_picks


def table(rows):
    """rows of (path, label, answers per step, probability of the true class per step)."""
    out = []
    for path, label, answers, true_p in rows:
        row = {"path": path, "label": label}
        for s, (a, p) in enumerate(zip(answers, true_p), start=1):
            row |= {f"pred_{s}": a, f"prob_true_{s}": p}
        out.append(row)
    return pd.DataFrame(out)


def test_a_gallery_file_is_the_same_image_as_its_test_split_row():
    assert classroom.dataset_path("cat_0003.jpg") == "test/cat/0003.jpg"
    assert classroom.dataset_path("deer_0000.jpg") == "test/deer/0000.jpg"


def test_demo_picks_put_images_that_recursion_fixes_first_then_changes_then_growth():
    predictions = table([
        ("test/cat/0000.jpg", 3, [3, 3, 3], [0.8, 0.8, 0.81]),    # nothing happens: not a pick
        ("test/cat/0001.jpg", 3, [3, 3, 3], [0.5, 0.6, 0.7]),     # grows by 20 points
        ("test/dog/0000.jpg", 5, [3, 5, 3], [0.3, 0.5, 0.3]),     # changes, ends wrong
        ("test/dog/0001.jpg", 5, [3, 3, 5], [0.2, 0.3, 0.6]),     # fixed by recursion
    ])
    files = ["cat_0000.jpg", "cat_0001.jpg", "dog_0000.jpg", "dog_0001.jpg", "ship_0000.jpg"]
    picks = classroom.demo_picks(predictions, files, last=3)
    assert list(picks) == ["dog_0001.jpg", "dog_0000.jpg", "cat_0001.jpg"]
    assert picks["dog_0001.jpg"] == "recursion fixes the answer"
    assert picks["cat_0001.jpg"] == "the right class grows by 20%"
    assert list(classroom.demo_picks(predictions, files, last=3, limit=1)) == ["dog_0001.jpg"]


def test_each_step_gets_a_sentence_saying_what_changed():
    names = ("cat", "dog")
    probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.45, 0.55], [0.45, 0.55]])
    halt = np.array([0.2, 0.4, 0.6, 0.7])
    assert classroom.narrate(probs, 1, names, halt) == "Step 1: the first guess is cat, at 60.0%."
    assert classroom.narrate(probs, 2, names, halt) == "Step 2: still cat; the model grows more sure (60.0% → 70.0%)."
    assert classroom.narrate(probs, 3, names, halt) == (
        "Step 3: the model changes its mind, from cat to dog (dog 55.0%, cat 45.0%). "
        "Its own 'am I right?' output reaches 0.5 here: it would stop now.")
    assert classroom.narrate(probs, 4, names, halt) == "Step 4: still dog; the model stays at 55.0%."


def test_the_words_follow_the_numbers_as_written():
    names = ("truck", "car")
    # 23.52% -> 24.41%: the old wording, rounding to whole percents, said "grows more sure (24% → 24%)".
    probs = np.array([[0.2352, 0.1], [0.2441, 0.1], [0.2444, 0.1], [0.2400, 0.1]])
    assert classroom.narrate(probs, 2, names) == "Step 2: still truck; the model grows more sure (23.5% → 24.4%)."
    assert classroom.narrate(probs, 3, names) == "Step 3: still truck; the model stays at 24.4%."
    assert classroom.narrate(probs, 4, names) == "Step 4: still truck; the model grows less sure (24.4% → 24.0%)."
    for step in range(2, 5):          # every number in a sentence is one the answer and the bars show
        shown = {classroom.percent(float(p)) for p in probs[step - 2:step].ravel()}
        written = {w.strip("().,") for w in classroom.narrate(probs, step, names).split() if w.endswith(("%", "%)"))}
        written = {w if w.endswith("%") else w + "%" for w in written}
        assert written <= shown, (step, written, shown)


def test_it_would_stop_only_at_the_first_step_the_halting_rule_stops_at():
    """Halting outputs that fall and rise: vitrm.analysis's rule stops at the first step at or above the
    threshold, so the sentence says so there and nowhere else (not again when the output rises back)."""
    from vitrm import analysis

    names = ("cat", "dog")
    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4]])
    halt = np.array([0.6, 0.4, 0.7])
    stops = [s for s in (1, 2, 3) if "it would stop now" in classroom.narrate(probs, s, names, halt)]
    assert stops == [analysis.halting_step(halt)] == [1]
    never = np.array([0.1, 0.2, 0.3])
    assert not any("stop" in classroom.narrate(probs, s, names, never) for s in (1, 2, 3))


def test_a_step_past_the_trained_count_is_named_an_extra_step():
    names = ("cat", "dog")
    probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.7, 0.3]])
    assert classroom.narrate(probs, 2, names, trained=2).startswith("Step 2: still cat")
    assert classroom.narrate(probs, 3, names, trained=2).startswith("Step 3 (an extra step: trained with 2): still")


def test_every_glossary_term_has_a_plain_explanation():
    assert {"||z - previous z||", "RMS ||Δz||", "PCA", "rollout", "ECE", "block call"} <= set(glossary.TERMS)
    assert "**PCA**" in glossary.tip("PCA", "ECE") and "**ECE**" in glossary.tip("PCA", "ECE")


def test_classroom_mode_shows_the_image_answer_chart_slider_and_the_steps_sentence(app, lab, monkeypatch):
    from app.views import classroom as view

    asked = []
    monkeypatch.setattr(classroom, "demo_picks", lambda predictions, files, last, **kw: asked.append(last) or
                        demo_picks(predictions, files, last, **kw))
    view.demo_marks.clear()
    at = select_models(run(app), lab, "vitrm-tiny")
    at.toggle(key="classroom").set_value(True)
    run(at)
    key = str(lab / "vitrm-tiny")
    step = at.slider(key=f"step::{key}").value
    assert f"Top class at step {step}" in metrics(at)
    assert len(at.get("plotly_chart")) == 1, "one probability chart, nothing else to scroll past"
    assert any(i.value.startswith(md(f"Step {step}:")) for i in at.info)      # shown as text (class names)
    at.slider(key=f"step::{key}").set_value(1)
    run(at)
    assert any(i.value.startswith(md("Step 1: the first guess is")) for i in at.info)
    picks = [o for o in at.selectbox(key="gallery_file").options if o.startswith("★")]
    saved = vitrm.read_predictions(lab / "vitrm-tiny")
    files = list(pd.read_csv(GALLERY / "labels.csv")["file"])
    expected = demo_picks(saved, files, TINY.trained_steps)
    assert len(picks) == len(expected)
    assert set(asked) == {TINY.trained_steps}, "the picks are chosen within the trained N, the steps Play tells"


SHIPPED = sorted(p.parent for p in (ROOT / "checkpoints").glob("*/predictions.csv.gz")
                 if vitrm.read_config(p.parent).recursive)


@pytest.mark.parametrize("checkpoint", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_models_demo_picks_say_what_its_predictions_show_within_its_trained_n(checkpoint):
    """Each pick's reason holds over steps 1..N of the model's own predictions.csv.gz, N the step count it was
    trained with: "recursion fixes the answer" is wrong at step 1 and right at N, "the answer changes" changes
    within N, and a growth is the growth from step 1 to N."""
    config, predictions = vitrm.read_config(checkpoint), vitrm.read_predictions(checkpoint)
    n = config.trained_steps
    files = list(pd.read_csv(GALLERY / "labels.csv")["file"])
    picks = classroom.demo_picks(predictions, files, n)
    if n == 1:
        assert picks == {}, "a one-step model has no story to tell"
        return
    assert picks, f"{checkpoint.name} has no demo pick in the gallery"
    rows = predictions.set_index("path")
    for file, why in picks.items():
        row = rows.loc[classroom.dataset_path(file)]
        answers = [int(row[f"pred_{s}"]) for s in range(1, n + 1)]
        if why == "recursion fixes the answer":
            assert answers[0] != row["label"] and answers[-1] == row["label"], (file, answers, row["label"])
        elif why == "the answer changes":
            assert len(set(answers)) > 1, (file, answers)
        else:
            growth = float(row[f"prob_true_{n}"] - row["prob_true_1"])
            assert why == f"the right class grows by {growth:.0%}" and growth >= classroom.MIN_GROWTH, (file, why)


def test_disagreeing_models_are_set_side_by_side_each_at_its_own_trained_n_with_its_own_flag():
    from app.views import scrubber

    rows = [{"name": "refine", "step": 8, "top": "frog", "probability": "35.0%", "unusual": True},
            {"name": "flagship", "step": 4, "top": "cat", "probability": "84.0%", "unusual": False},
            {"name": "cnn", "step": 1, "top": "cat", "probability": "60.0%", "unusual": None}]
    assert scrubber.model_answers_text(rows) is None, "they disagree: side by side, not one line"
    cells = [scrubber.model_answer_cell(r) for r in rows]
    assert cells[0].startswith("refine, step 8") and "**frog** 35.0%" in cells[0] and "probably none" in cells[0]
    assert "flagship, step 4" in cells[1] and "**cat** 84.0%" in cells[1] and "looks like its training" in cells[1]
    assert "probably none" not in cells[2] and "looks like" not in cells[2], "no check, no flag"
    agreeing = [r | {"top": "cat"} for r in rows]
    line = scrubber.model_answers_text(agreeing)
    assert line.startswith("All 3 loaded models answer **cat**") and "refine at step 8 (35.0%)" in line
    assert scrubber.model_answers_text(rows[:1]) is None
