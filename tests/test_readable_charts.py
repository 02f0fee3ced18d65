"""Charts that show their own message: small per-class changes visible, the accuracy curve on its own axis,
readable text, and no toolbar over small maps."""

from __future__ import annotations

import numpy as np
import pytest

from app.views import analysis, figures


def test_per_class_accuracy_is_drawn_as_change_since_step_1_on_a_scale_centred_on_zero():
    fig = analysis.per_class_figure([[0.50, 0.60], [0.51, 0.62], [0.49, 0.63]], ["cat", "dog"])
    heat = fig.data[0]
    assert np.asarray(heat.z) == pytest.approx(np.array([[0.0, 0.01, -0.01], [0.0, 0.02, 0.03]]))
    assert heat.zmid == 0 and heat.zmin == pytest.approx(-0.03) and heat.zmax == pytest.approx(0.03), \
        "a change of 1 point spans a third of the scale, not 1% of it"
    assert np.asarray(heat.customdata)[1, 2] == pytest.approx(0.63), "hover still gives the accuracy"


def test_the_accuracy_axis_spans_the_curves_and_a_far_baseline_is_labelled_at_its_edge():
    fig = analysis.accuracy_figure({"m": {"top1": [0.84, 0.85], "trained": 2}}, {"vit": 0.60, "cnn": 0.845})
    low, high = fig.layout.yaxis.range
    assert low > 0.8 and high < 0.9
    labels = {a.text: a.y for a in fig.layout.annotations}
    assert labels["vit 60.0% (off this axis)"] == pytest.approx(low)
    assert labels["cnn 84.5%"] == pytest.approx(0.845)


def test_chart_text_is_at_least_14_px_and_maps_have_no_toolbar():
    fig = figures.compact(analysis.ece_figure({"m": [0.1, 0.05]}), 300, "title")
    assert fig.layout.font.size >= 14 and fig.layout.title.font.size >= 14
    grid = figures.overlay(np.zeros((32, 32, 3), dtype=np.uint8), np.zeros((4, 4)), title="map")
    assert grid.layout.meta == figures.MAP


def test_the_model_table_shows_epochs_and_gives_a_cnn_no_effective_depth():
    from app import summaries
    cards = [{"name": "vitrm", "arch": "vitrm", "parameters": 1, "effective_depth": 24, "trained_steps": 4,
              "epochs_logged": 86},
             {"name": "cnn", "arch": "cnn", "parameters": 2, "effective_depth": 0, "trained_steps": 1,
              "epochs_logged": None}]
    table = summaries.comparison_table(cards).set_index("model")
    assert table.loc["vitrm", "epochs"] == "86" and table.loc["cnn", "epochs"] == "no log"
    assert table.loc["vitrm", "effective depth"] == "24" and table.loc["cnn", "effective depth"] == "n/a (CNN)"
