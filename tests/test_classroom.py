"""Classroom mode: demo picks from predictions.csv, a sentence per step, and the one-screen layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_app import GALLERY, TINY, app, lab, metrics, run, select_models  # noqa: F401 (fixtures)

import vitrm
from app import classroom, glossary
from app.text import md


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
    assert classroom.narrate(probs, 1, names, halt) == "Step 1: the first guess is cat, at 60%."
    assert classroom.narrate(probs, 2, names, halt) == "Step 2: still cat; the model grows more sure (60% → 70%)."
    assert classroom.narrate(probs, 3, names, halt) == (
        "Step 3: the model changes its mind, from cat to dog (dog 55%, cat 45%). "
        "The halting output reaches 0.5 here: it would stop now.")
    assert classroom.narrate(probs, 4, names, halt) == "Step 4: still dog; the model barely changes (55% → 55%)."


def test_every_glossary_term_has_a_plain_explanation():
    assert {"||z - previous z||", "RMS ||Δz||", "PCA", "rollout", "ECE", "block call"} <= set(glossary.TERMS)
    assert "**PCA**" in glossary.tip("PCA", "ECE") and "**ECE**" in glossary.tip("PCA", "ECE")


def test_classroom_mode_shows_the_image_answer_chart_slider_and_the_steps_sentence(app, lab):
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
    expected = classroom.demo_picks(saved, files, 2 * TINY.trained_steps)
    assert len(picks) == len(expected)
