"""Dataset analysis: the map of answers over steps (projection.safetensors), its selection into the error table,
the error table's CSV download, and the reliability diagram beside ECE vs N; driven through AppTest on
test_app's tiny checkpoints, checked against the files and the library."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import streamlit
from test_app import TINY, app, lab, plotly_specs, run, select_models, values  # noqa: F401 (fixtures)

import vitrm
from app import error_list, reliability
from app.views import error_table, projector


@pytest.fixture(scope="module")
def projected(lab):
    """vitrm-tiny with a projection of the images it was evaluated on, written by the library's command."""
    path = lab / "vitrm-tiny"
    data = json.loads((path / "metrics.json").read_text())["data"]
    vitrm.projection.project_checkpoint(path, data, cache_dir=None)
    return path, vitrm.sidefiles.read_projection(path, 10)


def open_section(at, lab, section: str):
    at = select_models(run(at), lab, "vitrm-tiny")
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value(section)
    return run(at)


def points(spec: dict) -> dict[int, tuple[float, float]]:
    """image index -> (x, y) of every point on the map, over all its traces."""
    out = {}
    for trace in spec["data"]:
        for i, x, y in zip(values(trace["customdata"]), values(trace["x"]), values(trace["y"])):
            out[int(i)] = (x, y)
    return out


def frame_points(spec: dict, step: int) -> dict[int, tuple[float, float]]:
    """image index -> (x, y) of every point in the frame of ``step``; a frame without customdata keeps its trace's
    images (the groups that stay the same at every step)."""
    out = {}
    for trace, moved in zip(spec["data"], spec["frames"][step - 1]["data"]):
        images = values(moved.get("customdata", trace["customdata"]))
        for i, x, y in zip(images, values(moved["x"]), values(moved["y"])):
            out[int(i)] = (x, y)
    return out


def test_the_projector_holds_every_step_of_every_image_so_the_browser_moves_the_steps(app, lab, projected):
    """One figure with a frame per step, shown by the figure's own slider and Play in the browser (no call to the
    server per step): each frame holds every image of the side file at that step, titled with the step and its
    share answered right; the figure opens on step 1. Coloured right or wrong, the groups change with the step."""
    path, saved = projected
    at = open_section(app, lab, projector.SECTION)
    key = str(path)
    spec = plotly_specs(at)[0]
    assert all(t["type"] == "scattergl" for t in spec["data"]), "WebGL: 10,000 points stay fast"
    assert [f["name"] for f in spec["frames"]] == [str(s) for s in range(1, saved.steps + 1)]
    slider = spec["layout"]["sliders"][0]
    assert [s["args"][0] for s in slider["steps"]] == [[str(s)] for s in range(1, saved.steps + 1)]
    assert slider["active"] == 0 and points(spec) == frame_points(spec, 1), "opens on step 1"
    trained = min(TINY.trained_steps, saved.steps)
    assert slider["steps"][trained - 1]["label"] == f"{trained}=N", "the trained N marked on the slider"
    assert any(b["label"].endswith("Play") for b in spec["layout"]["updatemenus"][0]["buttons"])
    for step in range(1, saved.steps + 1):
        drawn = frame_points(spec, step)
        assert sorted(drawn) == saved.index.tolist()
        for i, (x, y) in zip(saved.index.tolist(), saved.coords[step - 1].astype(float).tolist()):
            assert drawn[i] == pytest.approx((x, y), abs=1e-3)
        title = spec["frames"][step - 1]["layout"]["title"]["text"]
        assert f"after step {step} (" in title and f"{saved.right(step).mean():.1%} answered right" in title
    # A frame carries only what changes from step to step, the coordinates: colours, hover text and image indices
    # come once, with the figure's traces (16 frames of 10,000 points are most of what the page is sent).
    assert all(set(t) == {"type", "x", "y"} for f in spec["frames"] for t in f["data"])
    at.radio(key=f"projector_colour::{key}").set_value("right")
    run(at)
    spec = plotly_specs(at)[0]
    names = [t["name"] for t in spec["data"]]
    for step in (1, saved.steps):
        frame = spec["frames"][step - 1]["data"]
        assert all(set(t) == {"type", "x", "y", "customdata"} for t in frame), "and the members, which change"
        assert all(t["customdata"]["dtype"] == "u2" for t in frame), "two bytes an image where the indices fit"
        members = {name: sorted(values(t["customdata"])) for name, t in zip(names, frame)}
        right = saved.right(step)
        assert members == {"right": sorted(saved.index[right].tolist()), "wrong": sorted(saved.index[~right].tolist())}


def test_a_selection_on_the_map_lists_exactly_those_images_in_the_error_table(app, lab, projected, monkeypatch):
    path, saved = projected
    key = str(path)
    at = open_section(app, lab, projector.SECTION)
    chosen = saved.index[::3].tolist()
    # What the browser's lasso sends (AppTest cannot draw one): the selected points, each with its customdata.
    chart = f"projector::{key}::class"
    state = {chart: SimpleNamespace(selection=SimpleNamespace(points=[{"customdata": i} for i in chosen]))}
    with monkeypatch.context() as patched:
        patched.setattr(streamlit, "session_state", state)
        projector._select(key, chart)
    for name, value in state.items():
        if name != chart:
            at.session_state[name] = value
    run(at)
    assert at.radio(key="analysis_view").value == error_table.SECTION
    at.selectbox(key=f"errors::{key}::size").set_value(100)
    at.selectbox(key=f"errors::{key}::sort").set_value("image")      # dataset order
    at.toggle(key=f"errors::{key}::descending").set_value(False)
    run(at)
    shown = at.dataframe[0].value
    predictions = vitrm.read_predictions(path)
    assert len(shown) == len(chosen)
    assert list(shown["true class"]) == list(predictions.set_index("index").loc[chosen, "label_name"])
    next(b for b in at.button if b.label == "Show every image").click()
    run(at)
    assert len(at.dataframe[0].value) == min(100, len(predictions))


def test_a_garbled_or_hostile_projection_is_refused_with_a_clear_message(app, lab, projected):
    path, _ = projected
    good = (path / vitrm.projection.FILE).read_bytes()
    try:
        for bad, said in ((b"\x00" * 40, "not a safetensors file"), (good[:-7], "not a readable safetensors file"),
                          (good.replace(b"vitrm-projection 1", b"vitrm-projection 9"), "format is")):
            (path / vitrm.projection.FILE).write_bytes(bad)
            at = open_section(app, lab, projector.SECTION)
            message = " ".join(e.value for e in at.error).replace("\\", "")
            assert "The map of answers cannot be shown" in message and said in message
            assert vitrm.projection.FILE in message
            assert not plotly_specs(at), "nothing drawn from a refused file"
    finally:
        (path / vitrm.projection.FILE).write_bytes(good)


def test_the_csv_download_holds_exactly_the_filtered_rows_of_every_page(app, lab, monkeypatch):
    offered = {}
    original = streamlit.download_button

    def spy(label, data, *args, **kwargs):
        offered[label] = data
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", spy)
    at = open_section(app, lab, error_table.SECTION)
    key = str(lab / "vitrm-tiny")
    at.selectbox(key=f"errors::{key}::correctness").set_value("wrong")
    at.selectbox(key=f"errors::{key}::size").set_value(25)
    run(at)
    step = at.slider(key=f"analysis_n::{key}").value
    predictions = vitrm.read_predictions(lab / "vitrm-tiny")
    wrong = predictions[predictions[f"pred_{step}"] != predictions["label"]]
    label = f"Download these {len(wrong):,} rows (CSV)"
    assert label in offered, list(offered)
    table = pd.read_csv(io.BytesIO(offered[label]() if callable(offered[label]) else offered[label]))
    assert sorted(table["index"]) == sorted(wrong["index"]), "every filtered row, not only the page shown"
    assert set(table["path"]) == set(wrong["path"])
    assert (table[error_list.step_column(step, min(2, len([c for c in predictions if c.startswith('pred_')])))]
            != table["true class"]).all()


def test_a_csv_cell_cannot_start_a_spreadsheet_formula():
    rows = pd.DataFrame({"index": [0, 1], "path": ["=cmd()", "a.jpg"], "true class": ["@SUM(A1)", "cat"],
                         "confidence": [0.5, -0.5]})
    table = pd.read_csv(io.BytesIO(error_list.to_csv(rows)))
    assert list(table["path"]) == ["'=cmd()", "a.jpg"] and list(table["true class"]) == ["'@SUM(A1)", "cat"]
    assert list(table["confidence"]) == [0.5, -0.5], "numbers stay numbers"


def test_the_reliability_diagram_is_drawn_beside_ece_and_adds_up_to_the_ece_at_its_step(app, lab):
    at = open_section(app, lab, "Calibration")
    key = str(lab / "vitrm-tiny")
    predictions = vitrm.read_predictions(lab / "vitrm-tiny")
    measured = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())
    for step in (1, len(measured["ece_by_step"])):
        at.slider(key=f"reliability_step::{key}").set_value(step)
        run(at)
        specs = plotly_specs(at)
        assert len(specs) == 2, "ECE vs N and the reliability diagram side by side"
        bars = specs[1]["data"][0]
        conf = predictions[f"conf_{step}"].to_numpy()
        right = predictions[f"pred_{step}"].to_numpy() == predictions["label"].to_numpy()
        index = np.clip(np.ceil(conf * 15).astype(int), 1, 15) - 1
        expected = [right[index == b].mean() for b in range(15) if (index == b).any()]
        assert values(bars["y"]) == pytest.approx(expected)
        diagram = reliability.calibration_bins(predictions, step)
        assert diagram["images"].sum() == len(predictions)
        # metrics.json's ECE is computed on the model's own confidences, the table holds them rounded
        assert reliability.ece_of(diagram) == pytest.approx(measured["ece_by_step"][step - 1], abs=1e-5)
        assert f"step {step}" in specs[1]["layout"]["title"]["text"]
