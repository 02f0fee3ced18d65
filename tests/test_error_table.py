"""The browsable table of evaluated images: filters, order, pages, a row into the scrubber, a confusion cell
into the table, and previous / next from the scrubber.

The rules (``app.error_list``) are checked on a predictions table written here; the page is driven
through AppTest on test_app's tiny checkpoints, whose predictions.csv is vitrm.evaluate's own.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_app import TINY, app, expected_at, lab, metrics, run, select_models  # noqa: F401 (fixtures)

import vitrm
from app import error_list
from app.views import error_table

NAMES = ("cat", "dog", "ship")


def predictions(rows: list[tuple[int, list[int], list[float], list[float]]]) -> pd.DataFrame:
    """rows of (label, answers per step, confidence per step, probability of the true class per step)."""
    out = []
    for i, (label, preds, conf, true_p) in enumerate(rows):
        row = {"index": i, "path": f"test/{NAMES[label]}/{i:04d}.jpg", "label": label,
               "label_name": NAMES[label], "halt_step": len(preds)}
        for s, (p, c, t) in enumerate(zip(preds, conf, true_p), start=1):
            row |= {f"pred_{s}": p, f"conf_{s}": c, f"prob_true_{s}": t, f"halt_{s}": 0.1}
        out.append(row)
    return pd.DataFrame(out)


SAMPLE = predictions([
    (0, [0, 0, 0], [0.9, 0.9, 0.9], [0.9, 0.9, 0.9]),      # right throughout
    (0, [1, 0, 0], [0.6, 0.5, 0.7], [0.3, 0.5, 0.7]),      # fixed by recursion
    (1, [1, 2, 2], [0.5, 0.6, 0.8], [0.5, 0.3, 0.1]),      # broken by recursion
    (2, [0, 0, 0], [0.4, 0.45, 0.5], [0.2, 0.2, 0.2]),     # wrong throughout
])


def test_the_table_has_one_row_per_image_with_the_answers_at_step_1_the_chosen_step_and_n():
    table = error_list.build(SAMPLE, NAMES, step=2, n=3)
    assert len(table) == 4
    assert list(table["true class"]) == ["cat", "cat", "dog", "ship"]
    assert list(table["step 1"]) == ["cat", "dog", "dog", "cat"]
    assert list(table["step 2"]) == ["cat", "cat", "ship", "cat"]
    assert list(table["step 3 (N)"]) == ["cat", "cat", "ship", "cat"]
    assert list(table["confidence"]) == [0.9, 0.5, 0.6, 0.45]
    assert list(table["change"]) == pytest.approx([0.0, 0.4, -0.4, 0.0])


@pytest.mark.parametrize("step, n, columns", [
    (2, 3, ["step 1", "step 2", "step 3 (N)"]),
    (3, 3, ["step 1", "step 3 (N)"]),          # the selected step is N: one column, not two alike
    (1, 3, ["step 1", "step 3 (N)"]),
    (1, 1, ["step 1 (N)"]),                      # a single-step model
])
def test_each_answer_column_is_shown_once_when_the_selected_step_is_1_or_n(step, n, columns):
    table = error_list.build(SAMPLE, NAMES, step=step, n=n)
    assert [c for c in table.columns if c.startswith("step ")] == columns
    assert list(table[error_list.step_column(step, n)]) == list(table["_predicted"])
    assert list(table[error_list.step_column(step, n)]) == [NAMES[i] for i in SAMPLE[f"pred_{step}"]]


@pytest.mark.parametrize("filters, expected", [
    (error_list.Filters(), [0, 1, 2, 3]),
    (error_list.Filters(true=["cat"]), [0, 1]),
    (error_list.Filters(predicted=["ship"]), [2]),
    (error_list.Filters(correctness="wrong"), [2, 3]),
    (error_list.Filters(correctness="right"), [0, 1]),
    (error_list.Filters(recursion="fixed"), [1]),
    (error_list.Filters(recursion="broken"), [2]),
    (error_list.Filters(recursion="changed"), [1, 2]),
    (error_list.Filters(recursion="unchanged"), [0, 3]),
    (error_list.Filters(confidence=(0.5, 0.6)), [1, 2]),
    (error_list.Filters(true=["cat", "ship"], correctness="right"), [0, 1]),
])
def test_each_filter_keeps_exactly_its_images(filters, expected):
    table = error_list.build(SAMPLE, NAMES, step=2, n=3)
    assert list(error_list.apply(table, filters)["index"]) == expected


def test_sorting_by_a_column_keeps_dataset_order_among_ties_and_paging_covers_every_row_once():
    table = error_list.build(SAMPLE, NAMES, step=2, n=3)
    assert list(error_list.order(table, "change", descending=True)["index"]) == [1, 0, 3, 2]
    assert list(error_list.order(table, "confidence", descending=False)["index"]) == [3, 1, 2, 0]
    assert list(error_list.order(table, "image", descending=True)["index"]) == [3, 2, 1, 0]
    assert error_list.pages(4, 3) == 2 and error_list.pages(0, 25) == 1
    paged = [list(error_list.page(table, p, 3)["index"]) for p in (1, 2)]
    assert paged == [[0, 1, 2], [3]]
    assert list(error_list.page(table, 99, 3)["index"]) == [3], "a page past the end shows the last one"


# --------------------------------------------------------------------------- in the app

def open_table(at, lab):
    at = select_models(run(at), lab, "vitrm-tiny")
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value(error_table.SECTION)
    return run(at)


def table_frame(at) -> pd.DataFrame:
    return at.dataframe[0].value


def test_the_table_lists_every_evaluated_image_and_its_filters_narrow_it(app, lab):
    at = open_table(app, lab)
    saved = vitrm.read_predictions(lab / "vitrm-tiny")
    key = str(lab / "vitrm-tiny")
    at.selectbox(key=f"errors::{key}::size").set_value(25)
    run(at)
    assert len(table_frame(at)) == min(25, len(saved))
    at.selectbox(key=f"errors::{key}::correctness").set_value("wrong")
    run(at)
    step = at.slider(key=f"analysis_n::{key}").value
    wrong = saved[saved[f"pred_{step}"] != saved["label"]]
    assert len(table_frame(at)) == min(25, len(wrong))
    assert any(f"{len(wrong):,} of {len(saved):,} images" in c.value.replace("\\", "") for c in at.caption)


def test_filtering_by_a_true_and_a_predicted_class_lists_that_confusion_cells_images(app, lab):
    """What a click on a confusion cell sets (the click itself is driven in the real browser, test_browser)."""
    at = open_table(app, lab)
    key = str(lab / "vitrm-tiny")
    measured = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())
    names = measured["class_names"]
    step = at.slider(key=f"analysis_n::{key}").value
    trained = json.loads((lab / "vitrm-tiny" / "config.json").read_text())["trained_steps"]
    n = min(trained, len(measured["top1_by_step"]))          # as the Dataset page gives the table
    confusion = measured["confusion_by_step"][step - 1]
    true, predicted = max(((i, j) for i in range(len(names)) for j in range(len(names))),
                          key=lambda c: confusion[c[0]][c[1]])
    at.selectbox(key=f"errors::{key}::size").set_value(100)
    at.multiselect(key=f"errors::{key}::true").set_value([names[true]])
    at.multiselect(key=f"errors::{key}::predicted").set_value([names[predicted]])
    run(at)
    shown = table_frame(at)
    assert len(shown) == confusion[true][predicted] > 0
    assert set(shown["true class"]) == {names[true]}
    assert set(shown[error_list.step_column(step, n)]) == {names[predicted]}


def test_previous_and_next_step_through_the_list_the_image_was_opened_from(app, lab):
    at = open_table(app, lab)
    key = str(lab / "vitrm-tiny")
    saved = vitrm.read_predictions(lab / "vitrm-tiny")
    data_root = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())["data"].split(":", 1)[1]
    # What selecting the second row does (AppTest cannot click a dataframe row; test_browser does).
    from app.views import list_nav
    items = [(f"{data_root}/{p}", label) for p, label in zip(saved["path"], saved["label_name"])]
    at.session_state[list_nav.LIST] = {"title": "every image", "items": items, "model": None, "step": 2}
    at.session_state["dataset_image"] = items[1]
    at.session_state["source"] = "Dataset image"
    at.switch_page("screens/explore.py")
    run(at)
    assert any("Image 2 of" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Next ▶").click()
    run(at)
    assert f"True class: **{saved['label_name'][2]}**" in [c.value for c in at.caption]
    top, _ = expected_at(lab / "vitrm-tiny", items[2][0], at.slider(key=f"step::{key}").value)
    assert metrics(at)[f"Top class at step {at.slider(key=f'step::{key}').value}"] == top
    next(b for b in at.button if b.label == "◀ Previous").click()
    next(b for b in run(at).button if b.label == "◀ Previous").click()
    run(at)
    assert any("Image 1 of" in c.value for c in at.caption)
    assert next(b for b in at.button if b.label == "◀ Previous").disabled
