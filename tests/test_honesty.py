"""Honest answers on the Explore page: the classes a model knows are listed where images are uploaded, an
image that is probably none of them is flagged by the checkpoint's own rule (vitrm.ood) with its measured
false-alarm rate, and the halting head's output is named as a guess with what it was worth on the test set."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_app import GALLERY, SCRIPT, TIMEOUT, TINY, app, lab, png_bytes, run, select_models  # noqa: F401

import vitrm
from app import reliability
from app.text import md
from vitrm import ood


def test_the_upload_page_lists_the_classes_the_model_knows(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Upload")
    run(at)
    listed = next(c.value for c in at.caption if "knows only these" in c.value)
    assert f"knows only these {len(TINY.class_names)} classes" in listed
    assert all(name in listed for name in TINY.class_names)


def score_of(checkpoint, data: bytes) -> float:
    model = vitrm.load(checkpoint)
    pixels = model.preprocess(vitrm.load_image(io.BytesIO(data)))
    rule = ood.load(checkpoint)
    return float(rule.score(ood.trace_features(model, model.trace(pixels, attention=False), rule.feature))[0])


@pytest.mark.parametrize("flagged", [True, False])
def test_an_image_beyond_the_rules_threshold_is_called_probably_none_of_the_classes(lab, tmp_path, monkeypatch,
                                                                                   flagged):
    shutil.copytree(lab / "vitrm-tiny", tmp_path / "vitrm-tiny")
    features = torch.randn(200, TINY.dim, generator=torch.Generator().manual_seed(0))
    rule = ood.fit(features, torch.arange(200) % TINY.num_classes, features)
    ood.save(rule, tmp_path / "vitrm-tiny")
    upload = png_bytes(seed=11)
    score = score_of(tmp_path / "vitrm-tiny", upload)
    # The threshold moved just under or just over this image's score: the app must apply the rule as stored.
    rule.threshold = score * (0.99 if flagged else 1.01)
    rule.facts |= {"threshold": rule.threshold, "val_false_alarm": 0.05, "val_images": 5000,
                   "uniform_noise_flagged": 1.0, "outside_images": 22, "outside_flagged": 18 / 22}
    ood.save(rule, tmp_path / "vitrm-tiny")
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(tmp_path))
    at = run(AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT))
    at.radio(key="source").set_value("Upload")
    run(at)
    at.file_uploader[0].set_value([("odd.png", upload, "image/png")])
    run(at)
    warned = [w.value for w in at.warning if "probably none of the" in w.value]
    assert bool(warned) == flagged
    said = " ".join(c.value for c in at.caption)
    assert "5,000 validation images, 5.0% of which it flags (false alarms)" in said
    # The rule is ood.json's text, a stranger's: shown through the one escaping helper.
    assert md(rule.facts["rule"], limit=None) in said and "latent state z" in said
    assert "of images of uniform noise it flags 100%, and 18 of 22 photos of things outside the classes" in said


def test_the_halting_output_is_named_a_guess_and_its_test_set_record_is_stated(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.selectbox(key="gallery_file").set_value("cat_0003.jpg")
    run(at)
    step = at.slider(key=f"step::{lab / 'vitrm-tiny'}").value
    model = vitrm.load(lab / "vitrm-tiny")
    halt = float(model.trace(model.preprocess(Image.open(GALLERY / "cat_0003.jpg")), steps=step).halt[-1, 0])
    record = reliability.at(vitrm.read_predictions(lab / "vitrm-tiny"), step, halt)
    note = next(c.value for c in at.caption if "halting output at step" in c.value)
    assert f"halting output at step {step} is {halt:.2f}" in note and "not a promise" in note
    assert f"of the {record.images:,} images" in note and f"{record.right:.0%} were answered right" in note


def test_reliability_counts_the_images_whose_output_fell_in_the_same_tenth():
    table = pd.DataFrame({"label": [0, 0, 1, 1, 1], "pred_1": [0, 1, 1, 1, 0],
                          "halt_1": [0.71, 0.75, 0.79, 0.2, 0.7]})
    record = reliability.at(table, 1, 0.74)
    assert (record.low, record.high, record.images) == (0.7, 0.8, 4)
    assert record.right == pytest.approx(2 / 4)
    assert reliability.at(table, 2, 0.5) is None
    assert np.isnan(reliability.at(table, 1, 0.95).right)
