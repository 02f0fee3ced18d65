"""The Dataset analysis page's "Compare with…" section, driven through AppTest on test_app's tiny checkpoints.

A is ``vitrm-tiny`` and B ``vit-tiny``, both evaluated by ``vitrm.evaluate`` on the same small image
folder; what the page shows is checked against ``vitrm.compare_predictions`` run here on the files.
The rule itself is specified on hand-made tables in test_compare.py.
"""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from test_app import TINY, app, lab, plotly_specs, run, select_models, values  # noqa: F401 (fixtures)
from test_app_hostile import DIR_NAME, Audit, app_on, hostile  # noqa: F401 (fixture)

import vitrm
from app.text import md
from app.views import compare


def open_compare(at, lab, *names):
    at = select_models(run(at), lab, *names)
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value(compare.SECTION)
    return run(at)


def expected(lab, a="vitrm-tiny", b="vit-tiny", step_a=TINY.trained_steps, step_b=1) -> vitrm.Comparison:
    names = vitrm.read_config(lab / a).class_names
    return vitrm.compare_predictions(vitrm.read_predictions(lab / a), vitrm.read_predictions(lab / b),
                                     classes_a=names, classes_b=vitrm.read_config(lab / b).class_names,
                                     step_a=step_a, step_b=step_b)


def shown_metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_counts_shown_are_the_librarys_for_each_kind_of_disagreement(app, lab):
    at = open_compare(app, lab, "vitrm-tiny")
    result = expected(lab)
    assert result.disagreements.shape[0] > 0, "the fixture's two models must disagree somewhere"
    shown = shown_metrics(at)
    for kind in vitrm.DISAGREEMENTS:
        assert shown[vitrm.COMPARISON_KINDS[kind]] == f"{result.counts[kind]:,}"
    top1_a, top1_b = result.top1
    assert shown["Top-1 of B"] == f"{top1_b:.2%}"
    delta = next(m.delta for m in at.metric if m.label == "Top-1 of B")
    assert delta == f"{100 * (top1_b - top1_a):+.2f} points vs A ({top1_a:.2%})"
    # The model without predictions is named with its reason, not silently dropped.
    assert any("vitrm\\-concat\\-no\\-metrics \\(no predictions\\.csv\\.gz\\)" in c.value for c in at.caption)


def test_the_list_holds_exactly_the_disagreements_and_filters_by_kind(app, lab):
    at = open_compare(app, lab, "vitrm-tiny")
    result = expected(lab)
    key = str(lab / "vitrm-tiny")
    at.selectbox(key=compare.state_key(key, "size")).set_value(100)
    run(at)
    table = at.dataframe[0].value
    assert len(table) == len(result.disagreements)
    assert list(table["true class"]) == list(result.disagreements["label_name"])
    assert list(table["B at step 1"]) == list(result.disagreements["answer_b"])
    at.selectbox(key=compare.state_key(key, "kind")).set_value("a_right_b_wrong")
    run(at)
    table = at.dataframe[0].value
    assert len(table) == result.counts["a_right_b_wrong"]
    assert (table[f"A at step {TINY.trained_steps}"] == table["true class"]).all()
    assert (table["B at step 1"] != table["true class"]).all()


def test_the_per_class_and_confusion_differences_are_drawn_on_zero_centred_scales(app, lab):
    at = open_compare(app, lab, "vitrm-tiny")
    result = expected(lab)
    specs = plotly_specs(at)
    bars = next(s for s in specs if s["data"][0]["type"] == "bar")
    assert values(bars["data"][0]["x"]) == pytest.approx(list(result.per_class["difference"]), nan_ok=True)
    low, high = bars["layout"]["xaxis"]["range"]
    assert low == pytest.approx(-high) and high > 0
    heat = next(s for s in specs if s["data"][0]["type"] == "heatmap" and "B minus A" in
                s["layout"]["title"]["text"])
    assert values(heat["data"][0]["z"]) == result.confusion_difference.tolist()
    assert heat["data"][0]["zmid"] == 0 and heat["data"][0]["zmin"] == -heat["data"][0]["zmax"]


def test_the_model_table_has_epochs_training_time_parameters_and_compute(app, lab):
    at = open_compare(app, lab, "vitrm-tiny")
    table = at.table[-1].value.set_index("model")
    assert {"epochs", "training time", "parameters", "MFLOPs per image", "effective depth"} <= set(table.columns)
    # vitrm-tiny's log (test_app's fixture) records 3 epochs and wall_seconds up to 3; vit-tiny has no log.
    assert table.loc["vitrm-tiny", "epochs"] == "3" and table.loc["vitrm-tiny", "training time"] == "3 s"
    assert table.loc["vit-tiny", "epochs"] == "no log" and table.loc["vit-tiny", "training time"] == "unknown"
    model = vitrm.load(lab / "vitrm-tiny")
    flops = vitrm.flops_per_image(model, TINY.trained_steps)
    assert table.loc["vitrm-tiny", "MFLOPs per image"] == f"{flops / 1e6:,.1f}"
    assert table.loc["vitrm-tiny", "parameters"] == f"{vitrm.num_parameters(model):,}"


def test_selecting_a_row_opens_that_image_in_the_explore_scrubber_with_the_list(app, lab):
    at = open_compare(app, lab, "vitrm-tiny")
    result = expected(lab)
    key = str(lab / "vitrm-tiny")
    table_key = next(d.key for d in at.dataframe if d.key and d.key.startswith("compare_rows::"))
    # What a click on the second row sends (AppTest cannot click a row; the callback runs as it would).
    at.session_state[table_key] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    run(at)
    row = result.disagreements.iloc[1]
    data_root = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())["data"].split(":", 1)[1]
    assert at.session_state["dataset_image"] == (str(vitrm.paths.confine(data_root, row["path"])), row["label_name"])
    assert at.session_state["source"] == "Dataset image" and at.session_state["focus"] == key
    assert at.session_state[f"step::{key}"] == TINY.trained_steps
    assert any("Image 2 of" in c.value for c in at.caption), "previous / next walk the list of disagreements"


def test_two_tables_over_different_images_are_refused_with_the_librarys_reason(app, lab):
    half = lab / "vit-tiny-half"
    shutil.copytree(lab / "vit-tiny", half)
    table = vitrm.read_predictions(half)
    with gzip.open(half / "predictions.csv.gz", "wt") as f:
        f.write(table.iloc[: len(table) // 2].to_csv(index=False))
    try:
        at = open_compare(app, lab, "vitrm-tiny")
        at.selectbox(key=compare.state_key(str(lab / "vitrm-tiny"), "with")).set_value(str(half))
        run(at)
        assert any("cannot be compared image for image" in e.value and "do not cover the same images" in
                   e.value.replace("\\", "") for e in at.error)
        assert not at.dataframe, "no list is drawn from a partial join"
    finally:
        shutil.rmtree(half)



def test_opening_with_b_loads_b_and_shows_the_image_with_it(app, lab):
    at = open_compare(app, lab, "vitrm-tiny")
    result = expected(lab)
    key = str(lab / "vitrm-tiny")
    at.radio(key=compare.state_key(key, "open_with")).set_value("B")
    run(at)
    assert str(lab / "vit-tiny") in at.session_state["selected_checkpoints"]
    table_key = next(d.key for d in at.dataframe if d.key and d.key.startswith("compare_rows::"))
    at.session_state[table_key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    run(at)
    assert at.session_state["focus"] == str(lab / "vit-tiny")
    assert at.session_state["dataset_image"][1] == result.disagreements.iloc[0]["label_name"]


def test_hostile_names_in_both_checkpoints_are_shown_as_text(hostile, tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    shutil.copytree(hostile, root / DIR_NAME)
    other = shutil.copytree(hostile, root / (DIR_NAME + " B"))
    table = vitrm.read_predictions(other)
    table.loc[:2, "pred_2"] = (table.loc[:2, "pred_2"] + 1) % 3      # three disagreements at the trained N
    table.to_csv(other / "predictions.csv", index=False)
    audit = Audit()
    at = app_on(root, monkeypatch)
    audit.visit(at, "explore")
    at.switch_page("screens/dataset.py")
    audit.visit(at, "dataset analysis")
    at.radio(key="analysis_view").set_value(compare.SECTION)
    audit.visit(at, "compare")
    assert sum(int(m.value) for m in at.metric if m.label in vitrm.COMPARISON_KINDS.values()) == 3
    audit.assert_no_markup()
    assert audit.shown(md(DIR_NAME)), "the names were there, escaped"
    assert any("&lt;a href=" in text for _, text in audit.plotly), "class names reach the charts, escaped"


def test_training_time_sums_each_runs_last_wall_time_and_is_unknown_when_not_logged():
    import pandas as pd

    from app import summaries
    one_run = pd.DataFrame({"epoch": [1, 2], "wall_seconds": [100.0, 250.0]})
    assert summaries.training_seconds(one_run) == 250.0
    # Two stages, the second averaged with a side run over the same epochs (app.checkpoints' history).
    staged = pd.DataFrame({"epoch": [1, 2, 3, 3], "wall_seconds": [60.0, 120.0, 50.0, 70.0],
                           "stage": [1, 1, 2, 2], "run": ["", "", "", "b"]})
    assert summaries.training_seconds(staged) == 120.0 + 50.0 + 70.0
    assert summaries.training_seconds(pd.DataFrame({"epoch": [1], "train_loss": [1.0]})) is None
    assert summaries.training_seconds(pd.DataFrame({"epoch": [1], "wall_seconds": [float("nan")]})) is None
    assert summaries.training_seconds(None) is None
    assert [summaries.duration(s) for s in (None, 42, 540, 23_688)] == ["unknown", "42 s", "9 min", "6.6 h"]


def test_b_starts_as_the_other_loaded_model_not_the_first_name_alphabetically(lab, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    from streamlit.testing.v1 import AppTest
    from test_app import SCRIPT, TIMEOUT

    for name in ("vitrm-tiny", "vit-tiny"):
        shutil.copytree(lab / name, tmp_path / name)
    shutil.copytree(lab / "vit-tiny", tmp_path / "a-vit-copy")        # first alphabetically, and not loaded
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(tmp_path))
    monkeypatch.delenv("VITRM_CHECKPOINT_ROOTS", raising=False)
    at = open_compare(AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT), tmp_path, "vitrm-tiny", "vit-tiny")
    with_b = at.selectbox(key=compare.state_key(str(tmp_path / "vitrm-tiny"), "with"))
    assert with_b.options == ["a-vit-copy", "vit-tiny"], "the unloaded copy could be compared too"
    assert with_b.value == str(tmp_path / "vit-tiny"), "B is the other model loaded in the sidebar"
