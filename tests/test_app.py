"""The Streamlit app, driven through streamlit.testing.v1.AppTest on tiny checkpoints made here.

The checkpoints root is pointed at a temporary directory (``VITRM_CHECKPOINTS``) holding:

* ``vitrm-tiny``: a fresh tiny ViTRM with metrics.json and predictions.csv.gz written by
  ``vitrm.evaluate`` on a small image folder of real CIFAR-10 test images, plus a train log;
* ``vit-tiny``: its ViT baseline, evaluated the same way;
* ``vitrm-concat-no-metrics``: a ViTRM with combine="concat" and nothing beside its weights.

Shown values are checked against ``model.trace`` run here, outside the app.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import vitrm
from app import glossary
from vitrm import ViT, ViTRM, ViTRMConfig, vit_config_for
from vitrm.analysis import evenly_spaced
from vitrm.evaluate import evaluate_checkpoint
from vitrm.train import LOG_FIELDS

ROOT = Path(__file__).resolve().parents[1]
# What AppTest runs: the script each visit runs, as `streamlit run app/main.py` does.
SCRIPT = ROOT / "app" / "main.py"
GALLERY = ROOT / "app" / "gallery"
TIMEOUT = 60
TINY = ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1)
CONCAT = ViTRMConfig(dim=32, heads=2, layers=1, trained_steps=2, latent_updates=2, combine="concat",
                     tokenizer="conv", patch_size=8)


# --------------------------------------------------------------------------- fixtures and helpers

def gallery_imagefolder(data: Path) -> None:
    """A tiny ImageFolder from the built-in gallery: two test and one train image per class."""
    table = pd.read_csv(GALLERY / "labels.csv")
    for split, per_class in (("test", 2), ("train", 1)):
        for label, group in table.groupby("label"):
            (data / split / label).mkdir(parents=True)
            for file in group["file"][:per_class]:
                shutil.copy(GALLERY / file, data / split / label / file)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    checkpoints, data = root / "checkpoints", root / "data"
    gallery_imagefolder(data)
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), checkpoints / "vitrm-tiny")
    vitrm.save(ViT(vit_config_for(TINY)), checkpoints / "vit-tiny")
    vitrm.save(ViTRM(CONCAT), checkpoints / "vitrm-concat-no-metrics")
    for name in ("vitrm-tiny", "vit-tiny"):
        evaluate_checkpoint(checkpoints / name, f"imagefolder:{data}", cache_dir=None, progress=False)
    with open(checkpoints / "vitrm-tiny" / "train_log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for epoch in (1, 2, 3):
            writer.writerow({"epoch": epoch, "train_loss": 2.3 / epoch, "train_ce": 2.2 / epoch,
                             "train_halt_bce": 0.1 / epoch, "train_top1": 0.1 * epoch, "val_top1": 0.09 * epoch,
                             "test_top1": "", "lr": 0.001, "epoch_seconds": 1.0, "wall_seconds": float(epoch),
                             "images_per_second": 100.0})
    return checkpoints


def app_on(checkpoints: Path, monkeypatch) -> AppTest:
    """The app as it opens on the checkpoints under ``checkpoints`` (and no other root)."""
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(checkpoints))
    monkeypatch.delenv("VITRM_CHECKPOINT_ROOTS", raising=False)
    return AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT)


@pytest.fixture
def app(lab, monkeypatch):
    return app_on(lab, monkeypatch)


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, "\n".join(e.message + "\n" + "\n".join(e.stack_trace[-6:]) for e in at.exception)
    return at


def select_models(at: AppTest, lab: Path, *names: str) -> AppTest:
    at.multiselect(key="selected_checkpoints").set_value([str(lab / n) for n in names])
    return run(at)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def open_model_card(at: AppTest) -> AppTest:
    """Open the Explore page's model card, as a click on its expander does."""
    from app.views import model_card
    at.session_state[model_card.OPEN] = True
    return run(at)


def expected_at(checkpoint: Path, source, step: int) -> tuple[str, str]:
    """(top class, probability as shown) of ``model.trace`` run here, outside the app."""
    model = vitrm.load(checkpoint)
    steps = step if model.config.recursive else None
    probs = model.trace(model.preprocess(vitrm.load_image(source)), steps=steps).probs[-1, 0]
    top = int(probs.argmax())
    return model.config.class_names[top], f"{100 * probs[top].item():.2f}%"


def png_bytes(seed: int, size=(300, 200)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(data) -> list:
    """Plotly's JSON holds numpy arrays as {"dtype", "bdata" (base64), "shape"}; lists stay lists."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        shape = [int(d) for d in str(data.get("shape", len(array))).split(",")]
        return array.reshape(shape).tolist()
    return data


# --------------------------------------------------------------------------- explore: input and scrubber

def test_a_gallery_image_shows_the_traced_top_class_and_probability_at_each_step(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.selectbox(key="gallery_file").set_value("cat_0003.jpg")
    run(at)
    assert "True class: **cat**" in [c.value for c in at.caption]
    assert len(at.image) >= 2, "the original and the 32x32 model input are both shown"
    for step in (1, 2, 3):
        at.slider(key=f"step::{lab / 'vitrm-tiny'}").set_value(step)
        run(at)
        top, prob = expected_at(lab / "vitrm-tiny", GALLERY / "cat_0003.jpg", step)
        shown = metrics(at)
        assert shown[f"Top class at step {step}"] == top
        assert shown["Probability"] == prob


def test_the_step_count_goes_to_four_times_the_trained_count_and_the_slider_follows(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    n_input = at.number_input(key=f"n::{lab / 'vitrm-tiny'}")
    assert n_input.max == 4 * TINY.trained_steps
    n_input.set_value(8)
    run(at)
    slider = at.slider(key=f"step::{lab / 'vitrm-tiny'}")
    assert slider.max == 8
    slider.set_value(8)
    run(at)
    top, prob = expected_at(lab / "vitrm-tiny", GALLERY / "airplane_0000.jpg", 8)
    assert metrics(at)["Top class at step 8"] == top and metrics(at)["Probability"] == prob
    at.number_input(key=f"n::{lab / 'vitrm-tiny'}").set_value(3)
    run(at)
    assert at.slider(key=f"step::{lab / 'vitrm-tiny'}").value == 3, "the step is clamped to the new N"


def test_moving_the_slider_or_changing_n_does_no_model_work_until_n_passes_the_default(app, lab, monkeypatch):
    calls = []
    original = ViTRM.trace

    def counting_trace(self, *args, **kwargs):
        calls.append(kwargs.get("steps", args[1] if len(args) > 1 else None))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ViTRM, "trace", counting_trace)
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Upload")
    run(at)
    # Whether the gallery image was traced above depends on what earlier tests left in the process-wide
    # cache; count from the upload on, so the test says the same alone or in the suite.
    calls.clear()
    at.file_uploader[0].set_value(("noise.png", png_bytes(seed=1234), "image/png"))
    run(at)
    assert calls == [2 * TINY.trained_steps], "a new image is traced once, to the default N (twice the trained)"
    n_key, step_key = f"n::{lab / 'vitrm-tiny'}", f"step::{lab / 'vitrm-tiny'}"
    for step in (1, 3, 2):
        at.slider(key=step_key).set_value(step)
        run(at)
    at.number_input(key=n_key).set_value(3)
    run(at)
    assert len(calls) == 1
    at.number_input(key=n_key).set_value(6)
    run(at)
    assert calls[1:] == [4 * TINY.trained_steps], "past the default N, once more to the most steps offered"
    assert metrics(at)["Top class at step 2"]
    for n in (8, 2, 7):
        at.number_input(key=n_key).set_value(n)
        run(at)
    at.slider(key=step_key).set_value(7)
    run(at)
    assert len(calls) == 2 and metrics(at)["Top class at step 7"]


def test_a_slider_move_redraws_only_the_bars_at_the_step_and_the_charts_over_all_steps_stay_as_they_were(app, lab):
    """A chart whose spec changes costs the browser a redraw (bench/browser_speed.py); the charts over all
    steps must come out identical at every step, so that moving the slider redraws only the bars."""
    at = select_models(run(app), lab, "vitrm-tiny")
    slider_key = f"step::{lab / 'vitrm-tiny'}"

    def charts_at(step: int) -> dict[str, dict]:
        at.slider(key=slider_key).set_value(step)
        run(at)
        return {spec["layout"]["title"]["text"]: spec for spec in plotly_specs(at)}

    first, last = charts_at(1), charts_at(3)
    assert set(first) == set(last) and len(first) == 4
    changed = {title for title in first if first[title] != last[title]}
    assert changed == {next(t for t in first if t.startswith("Top "))}
    lines = last["Every class's probability, step by step"]
    assert [shape["x0"] for shape in lines["layout"]["shapes"]] == [TINY.trained_steps], \
        "the one dotted line marks the trained step count, not the selected step"


def test_a_chart_reaches_streamlit_through_plotlys_public_api_as_its_figure_would():
    """figures.show hands st.plotly_chart a chart written as a dict as it is (no figure validated in the app), or
    the figure once one was built and changed; what Streamlit makes of it (plotly.tools, as st.plotly_chart calls it)
    is the figure's own JSON."""
    import plotly.io
    import plotly.tools

    from app.views import figures, scrubber

    probs = np.random.default_rng(0).random((6, 10)).astype(np.float32)
    names = [f"class {i}" for i in range(10)]
    lines = scrubber.class_lines_figure(probs, None, names)
    assert figures.chart_input(lines).to_dict()["data"] is lines.spec["data"] and lines.built is None, \
        "a dict is handed over as it is"
    bars = scrubber.top_k_figure(probs[2], names, 5)
    bars.update_layout(height=200, uniformtext=dict(minsize=figures.MIN_FONT, mode="show"))   # as classroom does
    assert figures.chart_input(bars) is bars.built, "a changed figure is handed over with its change"
    photo = np.zeros((32, 32, 3), dtype=np.uint8)
    for fig in (scrubber.class_lines_figure(probs, 3, names), scrubber.halting_figure(probs[:, 0], None, 2), bars,
                figures.overlay(photo, np.ones((4, 4)), title="a map")):
        sent = plotly.tools.return_figure_from_figure_or_data(figures.chart_input(fig), validate_figure=True)
        assert json.loads(plotly.io.to_json(sent, validate=False)) == \
            json.loads(plotly.io.to_json(fig.to_dict(), validate=False))


def test_each_scrubber_chart_written_as_a_dict_draws_what_plotlys_validated_build_draws():
    """The scrubber writes its charts as plain dicts (no validation); each must draw, with its step marker,
    exactly what building it through plotly's validating API draws, for any labels and step counts."""
    import plotly.graph_objects as go
    import plotly.io

    from app import derive
    from app.text import plotly as label
    from app.views import figures, scrubber

    def drawn(fig) -> dict:
        """The figure's JSON, with plotly's base64 arrays read back as lists: what the browser draws."""
        return decoded(json.loads(plotly.io.to_json(fig)))

    def decoded(value):
        if isinstance(value, dict) and set(value) == {"dtype", "bdata"}:
            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
        if isinstance(value, dict):
            return {k: decoded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decoded(v) for v in value]
        return value

    def steps_axis(fig, count):
        fig.update_xaxes(title="step", dtick=1 if count <= 20 else None)

    def lines(probs, names):
        fig = go.Figure([go.Scatter(x=np.arange(1, len(probs) + 1), y=probs[:, c], mode="lines+markers",
                                    name=label(name),
                                    hovertemplate="%{fullData.name}: %{y:.3f} at step %{x}<extra></extra>")
                         for c, name in enumerate(names)])
        steps_axis(fig, len(probs))
        fig.update_yaxes(title="probability", range=[0, 1])
        return figures.compact(fig, 300, "Every class's probability, step by step")

    def halting(halt, stop):
        fig = go.Figure(go.Scatter(x=np.arange(1, len(halt) + 1), y=halt, mode="lines+markers",
                                   name="halting probability", line=dict(color="#54a24b")))
        figures.level_line(fig, derive.HALT_THRESHOLD, f"threshold {derive.HALT_THRESHOLD}")
        if stop is not None:
            fig.add_trace(go.Scatter(x=[stop], y=[halt[stop - 1]], mode="markers", name="would stop here",
                                     marker=dict(size=14, symbol="star", color="#e45756")))
        steps_axis(fig, len(halt))
        fig.update_yaxes(title="halting output", range=[0, 1])
        fig.update_layout(showlegend=False)
        return figures.compact(fig, 260, "Halting output, step by step")

    def updates(y, z):
        steps = np.arange(1, len(y) + 1)
        fig = go.Figure([go.Scatter(x=steps, y=y, mode="lines+markers", name="‖Δy‖ (answer)"),
                         go.Scatter(x=steps, y=z, mode="lines+markers", name="RMS ‖Δz‖ (latents)")])
        steps_axis(fig, len(steps))
        fig.update_yaxes(title="size of the update", rangemode="tozero")
        fig.update_layout(legend=dict(orientation="h", y=-0.3))
        return figures.compact(fig, 260, "How much each step changes y and z")

    def top_k(p, names, k):
        order = np.argsort(p)[::-1][:k][::-1]
        fig = go.Figure(go.Bar(x=p[order], y=[label(names[i]) for i in order], orientation="h",
                               text=[f"{100 * v:.1f}%" for v in p[order]], textposition="outside",
                               cliponaxis=False, marker_color="#4c78a8"))
        fig.update_xaxes(range=[0, scrubber.BAR_AXIS_END], tickvals=[0, 0.25, 0.5, 0.75, 1], tickformat=".0%",
                         title="probability")
        return figures.compact(fig, 260, f"Top {k} classes")

    rng = np.random.default_rng(0)
    names = ["cat", "dog", "a *bold* <b>name</b> & more", "ship"]
    for count in (2, 6, 24):
        probs, halt = rng.dirichlet(np.ones(4), count), rng.random(count)
        falling = halt[::-1].copy()
        for step in sorted({1, count // 2, count}):
            for stop in (None, max(1, count // 3)):
                assert drawn(scrubber.halting_figure(halt, step, stop)) == drawn(
                    figures.step_marker(halting(halt, stop), step))
                assert drawn(scrubber.halting_figure(halt, None, stop)) == drawn(halting(halt, stop))
            assert drawn(scrubber.class_lines_figure(probs, step, names)) == drawn(
                figures.step_marker(lines(probs, names), step))
            assert drawn(scrubber.updates_figure(halt, falling, step)) == drawn(
                figures.step_marker(updates(halt, falling), step))
            assert scrubber.class_lines_figure(probs, step, names).layout.shapes[-1].x0 == step
            assert drawn(scrubber.class_lines_figure(probs, None, names)) == drawn(lines(probs, names))
            assert drawn(scrubber.top_k_figure(probs[step - 1], names, 3)) == drawn(top_k(probs[step - 1], names, 3))


def test_a_traced_image_is_shared_read_only_between_sessions(lab):
    from app import cache

    model = vitrm.load(lab / "vitrm-tiny")
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    shared = cache.run_image(str(lab / "vitrm-tiny"), 0.0, "zeros", 4, pixels)
    assert cache.run_image(str(lab / "vitrm-tiny"), 0.0, "zeros", 4, pixels) is shared
    assert shared.probs.shape == (4, len(model.config.class_names))
    maps = cache.state_maps(str(lab / "vitrm-tiny"), 0.0, "zeros", 4, pixels)
    assert maps.z_norm.shape[0] == 4 and cache.state_maps(str(lab / "vitrm-tiny"), 0.0, "zeros", 4, pixels) is maps
    for array in (shared.probs, shared.pixels, maps.z_norm, maps.z_rgb):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    assert pixels.flags.writeable, "the caller's pixels stay its own"


def test_uploads_of_any_format_are_classified_and_a_bad_file_gets_its_own_message(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Upload")
    run(at)
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(seed=7, size=(64, 480)))).save(jpeg, format="JPEG")
    files = [("wide.png", png_bytes(seed=5), "image/png"), ("notes.png", b"this is text, not an image", "image/png"),
             ("tall.jpg", jpeg.getvalue(), "image/jpeg"), ("cut.jpg", jpeg.getvalue()[:200], "image/jpeg")]
    at.file_uploader[0].set_value(files)
    run(at)
    table = at.table[0].value.set_index("file")
    for name, data, _ in files:
        source = io.BytesIO(data)
        source.name = name
        try:
            vitrm.load_image(source)
        except vitrm.InvalidImageError as e:
            assert table.loc[name, "message"] == str(e)
            assert table.loc[name, "prediction"] == ""
            continue
        top, prob = expected_at(lab / "vitrm-tiny", data, TINY.trained_steps)
        assert table.loc[name, "prediction"] == top
        assert table.loc[name, "probability"] == prob
    assert (table["prediction"] != "").sum() == 2
    at.selectbox(key="upload_choice").set_value(2)       # the second good file: tall.jpg
    run(at)
    captions = [c for image in at.image for c in image.captions]
    assert "tall\\.jpg: original, 64x480 pixels" in captions, "the name is escaped (app.text.md) and shows as tall.jpg"
    top, prob = expected_at(lab / "vitrm-tiny", jpeg.getvalue(), TINY.trained_steps)
    assert metrics(at)[f"Top class at step {TINY.trained_steps}"] == top


def test_a_refused_upload_shows_its_message_not_the_previous_images_answer(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Upload")
    run(at)
    at.file_uploader[0].set_value([("good.png", png_bytes(seed=5), "image/png")])
    run(at)
    assert f"Top class at step {TINY.trained_steps}" in metrics(at)
    cut = png_bytes(seed=6)[:300]
    at.file_uploader[0].set_value([("good.png", png_bytes(seed=5), "image/png"), ("cut.png", cut, "image/png")])
    run(at)
    assert not metrics(at), "no answer on screen: the answer shown was good.png's, read as cut.png's"
    source = io.BytesIO(cut)
    source.name = "cut.png"
    with pytest.raises(vitrm.InvalidImageError) as refused:
        vitrm.load_image(source)
    assert str(refused.value) == "cut.png: the image file is damaged or truncated", "plain words, no decoder text"
    assert any(e.value.replace("\\", "") == str(refused.value) for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="upload_choice").value == 1
    at.selectbox(key="upload_choice").set_value(0)
    run(at)
    assert f"Top class at step {TINY.trained_steps}" in metrics(at), "the good file is still one choice away"


def test_a_camera_photo_is_classified_like_an_upload(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Camera")
    run(at)
    photo = io.BytesIO()
    Image.open(GALLERY / "frog_0001.jpg").resize((320, 240)).save(photo, format="JPEG")
    at.camera_input[0].set_value(("shot.jpg", photo.getvalue(), "image/jpeg"))
    run(at)
    top, prob = expected_at(lab / "vitrm-tiny", photo.getvalue(), TINY.trained_steps)
    assert metrics(at)[f"Top class at step {TINY.trained_steps}"] == top
    assert metrics(at)["Probability"] == prob


@pytest.mark.parametrize("present, loaded", [
    (("vitrm-cifar10", "vitrm-cifar10-refine", "vit-cifar10"), ["vitrm-cifar10-refine", "vitrm-cifar10"]),
    (("vitrm-cifar10", "vit-cifar10"), ["vitrm-cifar10"]),
    (("a-vit", "my-vitrm"), ["my-vitrm"]),                 # neither: the first recursive model
])
def test_a_first_visit_opens_on_the_refining_model_with_the_flagship_one_click_away(tmp_path, monkeypatch,
                                                                                     present, loaded):
    torch.manual_seed(0)
    for name in present:
        vitrm.save(ViT(vit_config_for(TINY)) if "vit-" in name or name == "a-vit" else ViTRM(TINY), tmp_path / name)
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(tmp_path))
    monkeypatch.delenv("VITRM_CHECKPOINT_ROOTS", raising=False)
    at = run(AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT))
    assert at.multiselect(key="selected_checkpoints").value == [str(tmp_path / n) for n in loaded]
    if len(loaded) > 1:
        focus = at.radio(key="focus")
        shown = [o.replace("\\", "") for o in focus.options]      # the names as drawn, markdown-escaped
        assert (focus.value, shown) == (str(tmp_path / loaded[0]), loaded), "one click to the flagship"


def test_switching_the_model_shows_that_models_own_prediction(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny", "vit-tiny")
    at.selectbox(key="gallery_file").set_value("ship_0002.jpg")
    run(at)
    # Every loaded model's answer in the answer area, each at its own trained N (not at the focus model's step).
    answers = {name: expected_at(lab / name, GALLERY / "ship_0002.jpg", steps)
               for name, steps in (("vitrm-tiny", TINY.trained_steps), ("vit-tiny", 1))}
    if len({top for top, _ in answers.values()}) > 1:
        cells = [m.value.replace("\\", "") for m in at.markdown if ", step " in m.value]
        assert [cell.split(",")[0] for cell in cells] == ["vitrm-tiny", "vit-tiny"], "side by side, focus first"
        for cell, (name, (top, prob)) in zip(cells, answers.items()):
            assert f"**{top}** {float(prob[:-1]):.1f}%" in cell, (name, cell)
    else:
        line = next(c.value.replace("\\", "") for c in at.caption if c.value.startswith("All 2 loaded models"))
        for name, (top, prob) in answers.items():
            assert f"{name} at step {TINY.trained_steps if name == 'vitrm-tiny' else 1} ({float(prob[:-1]):.1f}%)" \
                in line and f"**{top}**" in line
    at.radio(key="focus").set_value(str(lab / "vit-tiny"))
    run(at)
    top, prob = expected_at(lab / "vit-tiny", GALLERY / "ship_0002.jpg", 1)
    assert metrics(at)["Top class at step 1"] == top and metrics(at)["Probability"] == prob
    assert any("not recursive" in i.value for i in at.info)
    for view in ("Evolving state", "Attention", "Attribution"):
        at.radio(key="explore_view").set_value(view)
        run(at)


def test_the_model_card_shows_architecture_depth_steps_data_accuracy_and_baselines(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    assert "Parameters" not in metrics(at), "the card is drawn (and its compute counted) only once opened"
    shown = metrics(open_model_card(at))
    measured = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())
    assert shown["Parameters"] == f"{vitrm.num_parameters(vitrm.load(lab / 'vitrm-tiny')):,}"
    assert shown["Effective depth"] == f"{TINY.effective_depth} layers"
    assert shown["Trained steps N"] == str(TINY.trained_steps)
    assert shown["Top-1 at N=2"] == f"{100 * measured['top1_by_step'][1]:.2f}%"
    assert shown["Peak top-1"] == f"{100 * max(measured['top1_by_step']):.2f}%"
    card_text = " ".join(m.value for m in at.markdown)
    assert "cifar10-jpeg" not in card_text and "Training data:" in card_text
    comparison = at.table[0].value
    assert set(comparison["model"]) == {"vitrm-tiny", "vit-tiny"}
    vit_metrics = json.loads((lab / "vit-tiny" / "metrics.json").read_text())
    vit_row = comparison.set_index("model").loc["vit-tiny"]
    assert vit_row["parameters"] == f"{vit_metrics['parameters']:,}"
    assert vit_row["top-1 at trained N"] == f"{100 * vit_metrics['top1_by_step'][0]:.2f}%"
    counted = vitrm.flops_per_image(vitrm.load(lab / "vit-tiny"))
    assert vit_row["MFLOPs per image"] == f"{counted / 1e6:,.1f}", "each row of the table says what it costs"


def test_the_model_card_shows_the_compute_per_image_at_the_trained_n_as_the_library_counts_it(app, lab):
    at = open_model_card(select_models(run(app), lab, "vitrm-tiny", "vit-tiny"))
    for name, steps in (("vitrm-tiny", TINY.trained_steps), ("vit-tiny", None)):
        at.radio(key="focus").set_value(str(lab / name))
        run(at)
        card = next(m for m in at.metric if m.label == "MFLOPs per image")
        counted = vitrm.flops_per_image(vitrm.load(lab / name), steps)
        assert card.value == f"{counted / 1e6:,.1f}", name
        assert f"**MFLOPs**: {glossary.TERMS['MFLOPs']}" in card.proto.help
    with_n = {n: f"{vitrm.flops_per_image(vitrm.load(lab / 'vitrm-tiny'), n) / 1e6:,.1f}" for n in (1, 2, 4)}
    assert len(set(with_n.values())) == 3, "the shown figure tells the trained N from others"


def test_the_model_card_says_unknown_where_torch_cannot_count_the_compute(app, lab, monkeypatch):
    from app import cache

    def cannot_count(model, steps=None):
        raise RuntimeError("an operator the FLOP counter does not know")

    monkeypatch.setattr(vitrm, "flops_per_image", cannot_count)
    cache.flops_per_image.clear()          # counted by an earlier test of the same checkpoint
    try:
        at = open_model_card(select_models(run(app), lab, "vitrm-tiny"))
        assert metrics(at)["MFLOPs per image"] == "unknown"
        assert metrics(at)["Parameters"] == f"{vitrm.num_parameters(vitrm.load(lab / 'vitrm-tiny')):,}"
    finally:
        cache.flops_per_image.clear()      # the failure is not remembered for later tests


def test_the_per_step_table_can_be_downloaded(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    labels = [b.label for b in at.get("download_button")]
    assert "Download per-step results (CSV)" in labels


# --------------------------------------------------------------------------- explore: state, attention, attribution

def test_the_evolving_state_and_attention_views_draw_every_choice(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny", "vitrm-concat-no-metrics")
    for focus in ("vitrm-tiny", "vitrm-concat-no-metrics"):
        at.radio(key="focus").set_value(str(lab / focus))
        at.radio(key="explore_view").set_value("Evolving state")
        run(at)
        at.radio(key="z_measure").set_value(at.radio(key="z_measure").options[1])
        run(at)
        assert len(at.get("plotly_chart")) == 3
        at.radio(key="explore_view").set_value("Attention")
        run(at)
        key = str(lab / focus)
        at.selectbox(key=f"att_layer::{key}").set_value(at.selectbox(key=f"att_layer::{key}").options[-1])
        at.selectbox(key=f"att_head::{key}").set_value("head 2")
        for call in range(len(at.selectbox(key=f"att_call::{key}").options)):
            at.selectbox(key=f"att_call::{key}").set_value(call)
            run(at)
        rollout = next(c.value for c in at.caption if "rollout" in c.value.lower())
        shares = [int(s.rstrip("%")) for s in rollout.split() if s.endswith("%")]
        assert abs(sum(shares) - 100) <= 2, rollout


def test_every_attribution_method_runs_and_shows_its_time(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="explore_view").set_value("Attribution")
    run(at)
    next(b for b in at.button if b.label.startswith("Compute attributions")).click()
    run(at)
    names = ("Integrated Gradients", "Saliency", "GradientShap", "Occlusion")
    timed = next(m.value for m in at.markdown if m.value.startswith("Attributions for"))
    for name in names:
        assert re.search(rf"\*\*{name}\*\* \d+\.\d\d s", timed), timed
    maps = plotly_specs(at)[-1]
    assert [a["text"].split(" (")[0] for a in maps["layout"]["annotations"]] == list(names)
    assert sum(t["type"] == "heatmap" for t in maps["data"]) == 4
    at.selectbox(key="attr_target").set_value("truck")
    run(at)
    next(b for b in at.button if b.label.startswith("Compute attributions")).click()
    run(at)
    assert any(m.value.startswith("Attributions for **truck**") for m in at.markdown)
    row_button = next(b for b in at.button if b.label.startswith("Row for truck"))
    row_button.click()
    run(at)
    assert any("at each step" in c.value for c in at.caption)
    row = plotly_specs(at)[-1]
    assert row["layout"]["coloraxis"]["cmin"] == -row["layout"]["coloraxis"]["cmax"], "one symmetric scale"


# --------------------------------------------------------------------------- dataset analysis

def test_every_analysis_view_opens_and_shows_the_evaluated_figures(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny", "vit-tiny")
    at.switch_page("screens/dataset.py")
    run(at)
    measured = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())
    baseline = json.loads((lab / "vit-tiny" / "metrics.json").read_text())
    for section in ("Accuracy vs N", "Per class", "Confusion matrix", "Calibration", "Halting", "Galleries",
                    "Training log"):
        at.radio(key="analysis_view").set_value(section)
        run(at)
        if section == "Accuracy vs N":
            spec = plotly_specs(at)[0]
            curve = next(t for t in spec["data"] if t.get("name", "").split(" (")[0] == "vitrm-tiny")
            assert values(curve["y"]) == pytest.approx(measured["top1_by_step"])
            flat = [a for a in spec["layout"].get("shapes", []) if a.get("y0") == a.get("y1")]
            assert [s["y0"] for s in flat] == pytest.approx([baseline["top1_by_step"][0]])
        if section in ("Per class", "Confusion matrix", "Halting"):
            at.radio(key="analysis_model").set_value(str(lab / "vitrm-tiny"))
            run(at)
        if section == "Confusion matrix":
            at.slider(key=f"analysis_n::{lab / 'vitrm-tiny'}").set_value(3)
            run(at)
            spec = plotly_specs(at)[0]
            assert values(spec["data"][0]["customdata"]) == measured["confusion_by_step"][2]
        if section == "Halting":
            spec = plotly_specs(at)[0]
            assert values(spec["data"][0]["y"]) == measured["halting"]["halt_step_histogram"]
        if section == "Galleries":
            for kind in ("misclassified", "fixed", "broken"):
                at.radio(key="gallery_kind").set_value(kind)
                run(at)
        if section == "Training log":
            assert len(at.get("plotly_chart")) == 2


def test_accuracy_vs_cost_places_each_evaluated_checkpoint_at_its_own_parameters_compute_and_budget(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value("Accuracy vs cost")
    run(at)
    spec = plotly_specs(at)[0]
    for name in ("vitrm-tiny", "vit-tiny"):
        model = vitrm.load(lab / name)
        top1 = json.loads((lab / name / "metrics.json").read_text())["top1_by_step"][model.config.trained_steps - 1]
        by_parameters, by_compute = [t for t in spec["data"] if t["name"].split(" ")[0] == name]
        assert values(by_parameters["x"]) == [vitrm.num_parameters(model)]
        flops = vitrm.flops_per_image(model, model.config.trained_steps)
        assert values(by_compute["x"]) == pytest.approx([flops / 1e6])
        assert values(by_parameters["y"]) == pytest.approx([top1])
    assert not any(t["name"].startswith("vitrm-concat-no-metrics") for t in spec["data"]), "not evaluated: no point"
    table = at.dataframe[0].value
    budgets = dict(zip(table["checkpoint"], table["training budget"]))
    assert budgets["vitrm-tiny"] == "3 epochs" and budgets["vit-tiny"] == "no training log"


def test_the_pages_leave_the_checkpoint_files_that_every_session_shares_as_they_were_read(app, lab):
    from app import cache, checkpoints

    at = select_models(run(app), lab, "vitrm-tiny", "vit-tiny")
    for view in ("Scrubber", "Evolving state", "Attention", "Attribution"):
        at.radio(key="explore_view").set_value(view)
        run(at)
    at.switch_page("screens/dataset.py")
    run(at)
    for section in at.radio(key="analysis_view").options:
        at.radio(key="analysis_view").set_value(section)
        run(at)
    for name in ("vitrm-tiny", "vit-tiny"):
        shared = cache.checkpoint_files(str(lab / name), checkpoints.files_mtime(lab / name))
        fresh = checkpoints.read_files(lab / name)
        assert shared.metrics == fresh.metrics and shared.train_config == fresh.train_config
        for table in ("predictions", "train_log"):
            if getattr(fresh, table) is None:
                assert getattr(shared, table) is None
            else:
                pd.testing.assert_frame_equal(getattr(shared, table), getattr(fresh, table))


def test_a_gallery_click_opens_the_image_in_the_scrubber(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value("Galleries")
    run(at)
    at.radio(key="gallery_kind").set_value("misclassified")
    run(at)
    predictions = vitrm.read_predictions(lab / "vitrm-tiny")
    first = predictions[predictions["pred_2"] != predictions["label"]].iloc[0]
    next(b for b in at.button if b.label == "Open in scrubber").click()
    run(at)
    assert at.radio(key="source").value == "Dataset image"
    assert f"True class: **{first['label_name']}**" in [c.value for c in at.caption]
    data_root = Path(json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())["data"].split(":", 1)[1])
    top, prob = expected_at(lab / "vitrm-tiny", data_root / first["path"], TINY.trained_steps)
    assert metrics(at)[f"Top class at step {TINY.trained_steps}"] == top


def test_a_gallery_click_opens_the_image_with_that_model_in_focus_at_the_gallerys_n(app, lab):
    at = select_models(run(app), lab, "vitrm-concat-no-metrics", "vitrm-tiny")
    assert at.radio(key="focus").value == str(lab / "vitrm-concat-no-metrics")
    assert metrics(open_model_card(at))["Peak top-1"] == "n/a", "a model without metrics.json says so in its card"
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value("Galleries")
    run(at)
    n = 3                                         # not the trained count, where the scrubber opens by itself
    at.slider(key=f"analysis_n::{lab / 'vitrm-tiny'}").set_value(n)
    at.radio(key="gallery_kind").set_value("misclassified")
    run(at)
    predictions = vitrm.read_predictions(lab / "vitrm-tiny")
    first = predictions[predictions[f"pred_{n}"] != predictions["label"]].iloc[0]
    next(b for b in at.button if b.label == "Open in scrubber").click()
    run(at)
    # The gallery was vitrm-tiny's at N=3: the scrubber opens on that model, at that step.
    assert at.radio(key="focus").value == str(lab / "vitrm-tiny")
    assert at.slider(key=f"step::{lab / 'vitrm-tiny'}").value == n
    data_root = Path(json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())["data"].split(":", 1)[1])
    top, prob = expected_at(lab / "vitrm-tiny", data_root / first["path"], n)
    assert metrics(at)[f"Top class at step {n}"] == top and metrics(at)["Probability"] == prob
    assert top != first["label_name"], "it is shown misclassified, as in the gallery"


def test_a_galleries_n_beyond_the_scrubbers_n_raises_it(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.number_input(key=f"n::{lab / 'vitrm-tiny'}").set_value(TINY.trained_steps)     # the scrubber's N lowered
    run(at)
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value("Galleries")
    run(at)
    last = len(json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())["top1_by_step"])
    assert last > TINY.trained_steps
    at.slider(key=f"analysis_n::{lab / 'vitrm-tiny'}").set_value(last)
    at.radio(key="gallery_kind").set_value("misclassified")
    run(at)
    next(b for b in at.button if b.label == "Open in scrubber").click()
    run(at)
    assert at.number_input(key=f"n::{lab / 'vitrm-tiny'}").value == last
    assert at.slider(key=f"step::{lab / 'vitrm-tiny'}").value == last
    assert f"Top class at step {last}" in metrics(at)


def test_evaluated_figures_can_be_recomputed_on_k_images_and_put_back(app, lab):
    metrics_file = lab / "vitrm-tiny" / "metrics.json"
    before = metrics_file.read_bytes(), metrics_file.stat().st_mtime_ns
    at = select_models(run(app), lab, "vitrm-tiny")
    at.switch_page("screens/dataset.py")
    run(at)
    saved = json.loads(metrics_file.read_text())
    assert any(f"Test data: {saved['num_images']} images" in c.value for c in at.caption)
    k = 10
    at.number_input(key=f"k::{lab / 'vitrm-tiny'}").set_value(k)
    run(at)
    next(b for b in at.button if b.label.startswith(f"Compute on {k} images")).click()
    run(at)
    assert any(f"computed in this session on {k} images" in i.value for i in at.info)
    assert any(f"Test data: {k} images" in c.value for c in at.caption), "the figures are the recomputed ones"
    assert (metrics_file.read_bytes(), metrics_file.stat().st_mtime_ns) == before, "the app writes nothing"
    # Names are escaped for markdown (app.text.md): "vitrm\\-tiny" shows as vitrm-tiny.
    back = "Back to vitrm-tiny's saved metrics.json"
    next(b for b in at.button if b.label.replace("\\", "").startswith(back)).click()
    run(at)
    assert not any("computed in this session" in i.value for i in at.info)
    curve = next(t for t in plotly_specs(at)[0]["data"] if t.get("name", "").split(" (")[0] == "vitrm-tiny")
    assert values(curve["y"]) == pytest.approx(saved["top1_by_step"])


def test_missing_metrics_are_said_and_can_be_computed_on_k_images(app, lab):
    at = select_models(run(app), lab, "vitrm-concat-no-metrics")
    at.switch_page("screens/dataset.py")
    run(at)
    assert any("no metrics.json" in w.value for w in at.warning)
    at.number_input(key=f"k::{lab / 'vitrm-concat-no-metrics'}").set_value(20)
    run(at)
    next(b for b in at.button if b.label.startswith("Compute on 20 images")).click()
    run(at)
    assert any("computed in this session on 20 images" in i.value for i in at.info)
    assert not (lab / "vitrm-concat-no-metrics" / "metrics.json").exists(), "the app writes nothing"
    # The same 20 gallery images, spread evenly, traced here.
    table = pd.read_csv(GALLERY / "labels.csv")
    model = vitrm.load(lab / "vitrm-concat-no-metrics")
    picked = table.iloc[evenly_spaced(len(table), 20).tolist()]
    images = model.preprocess([vitrm.load_image(GALLERY / f) for f in picked["file"]])
    labels = torch.tensor([CONCAT.class_names.index(c) for c in picked["label"]])
    # At the evaluate command's default steps (2N), as python -m vitrm evaluate would run them.
    assert vitrm.steps.default_steps(CONCAT) == 2 * CONCAT.trained_steps
    trace = model.trace(images, steps=vitrm.steps.default_steps(CONCAT), attention=False)
    expected = (trace.logits.argmax(-1) == labels).float().mean(1).tolist()
    spec = plotly_specs(at)[0]
    curve = next(t for t in spec["data"] if t.get("name", "").split(" (")[0] == "vitrm-concat-no-metrics")
    assert values(curve["y"]) == pytest.approx(expected)


def test_metrics_without_the_per_image_table_are_used_and_the_table_is_offered(lab, tmp_path, monkeypatch):
    shutil.copytree(lab / "vitrm-tiny", tmp_path / "vitrm-metrics-only")
    vitrm.predictions_file(tmp_path / "vitrm-metrics-only").unlink()
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(tmp_path))
    at = run(AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT))
    at.switch_page("screens/dataset.py")
    run(at)
    assert any("has no predictions.csv.gz" in w.value for w in at.warning)
    assert any(b.label.startswith("Compute on") for b in at.button)
    measured = json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())
    curve = next(t for t in plotly_specs(at)[0]["data"] if t.get("name", "").split(" (")[0] == "vitrm-metrics-only")
    assert values(curve["y"]) == pytest.approx(measured["top1_by_step"])
    at.radio(key="analysis_view").set_value("Galleries")
    run(at)
    assert any("need predictions.csv.gz" in i.value for i in at.info)


def test_accuracy_vs_trained_n_is_drawn_beside_test_time_steps_from_a_sweep_of_checkpoints(lab, tmp_path,
                                                                                           monkeypatch):
    import dataclasses
    for n in (1, 2, 4):
        torch.manual_seed(n)
        vitrm.save(ViTRM(dataclasses.replace(TINY, trained_steps=n)), tmp_path / f"sweep-N{n}")
        evaluate_checkpoint(tmp_path / f"sweep-N{n}", f"imagefolder:{lab.parent / 'data'}", cache_dir=None,
                            progress=False)
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(tmp_path))
    at = run(AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT))
    at.switch_page("screens/dataset.py")
    run(at)
    titles = [spec["layout"]["title"]["text"] for spec in plotly_specs(at)]
    assert any(t.startswith("Accuracy vs test-time steps") for t in titles), titles
    trained = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"].startswith("Accuracy vs trained N"))
    own_n = [json.loads((tmp_path / f"sweep-N{n}" / "metrics.json").read_text())["top1_by_step"][n - 1]
             for n in (1, 2, 4)]
    assert values(trained["data"][0]["x"]) == [1, 2, 4]
    assert values(trained["data"][0]["y"]) == pytest.approx(own_n)
    assert any("test-time steps runs one trained model" in c.value for c in at.caption)


# --------------------------------------------------------------------------- checkpoints and the other pages

def test_without_checkpoints_the_app_explains_how_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(tmp_path))
    at = run(AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT))
    assert any("No checkpoint is loaded" in w.value for w in at.warning)
    assert any("python -m vitrm train configs/vitrm-cifar10.yaml" in m.value for m in at.markdown)
    at.switch_page("screens/how_it_works.py")
    run(at)
    assert any("default configuration" in i.value for i in at.info)
    assert f"width {ViTRMConfig().dim}" in at.get("graphviz_chart")[0].proto.spec
    at.switch_page("screens/dataset.py")
    run(at)
    assert any("No checkpoint is loaded" in w.value for w in at.warning)


def test_a_typed_path_must_be_a_checkpoint_under_an_allowed_root(app, lab, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    torch.manual_seed(1)
    vitrm.save(ViTRM(TINY), elsewhere / "outside")
    allowed = tmp_path / "allowed"
    vitrm.save(ViTRM(TINY), allowed / "extra")
    (allowed / "pickled").mkdir()
    marker = tmp_path / "unpickled"
    (allowed / "pickled" / "model.pt").write_bytes(
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    monkeypatch.setenv("VITRM_CHECKPOINT_ROOTS", str(allowed))
    at = run(app)
    at.text_input(key="typed_path").set_value(str(elsewhere / "outside"))
    run(at)
    assert any("outside the allowed checkpoint roots" in e.value for e in at.sidebar.error)
    at.text_input(key="typed_path").set_value(str(allowed / "pickled"))
    run(at)
    assert any("pickle" in e.value for e in at.sidebar.error)
    assert not marker.exists()
    at.text_input(key="typed_path").set_value(str(allowed / "extra"))
    run(at)
    assert not at.sidebar.error
    assert str(allowed / "extra") in at.multiselect(key="selected_checkpoints").value


def test_how_vitrm_works_is_drawn_from_the_models_real_config(app, lab):
    at = select_models(run(app), lab, "vitrm-concat-no-metrics")
    at.switch_page("screens/how_it_works.py")
    run(at)
    dot = at.get("graphviz_chart")[0].proto.spec
    assert f"trained with N={CONCAT.trained_steps}" in dot
    assert f"{CONCAT.layers} layer · {CONCAT.heads} heads · width {CONCAT.dim}" in dot      # one layer: "1 layer"
    assert f"n={CONCAT.latent_updates}: {CONCAT.latent_updates} times" in dot and "[y, x, z]" in dot
    assert f"{2 * CONCAT.num_tokens + 1} tokens" in dot


# --------------------------------------------------------------------------- the numbers behind the views

def test_z_colours_are_fitted_once_so_a_latent_that_returns_keeps_its_colour():
    from app import derive
    z = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(0))
    z[2, 0] = z[0, 0]                       # patch 0 comes back to where it was at step 1
    rgb = derive.z_pca_rgb(z, grid=2)
    assert rgb.shape == (3, 2, 2, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb[0, 0, 0], rgb[2, 0, 0], atol=1e-6)
    assert not np.allclose(rgb[0, 0, 0], rgb[1, 0, 0])


def test_rollout_follows_attention_back_to_the_image_patch_it_came_from():
    from app import derive
    from vitrm import AttentionMaps
    tokens, layers = 4, 2
    # Every token of every latent update looks only at token 1 (x1 + z1); the answer token
    # looks only at z1. Rollout must credit patch 1 of the image above all other patches.
    latent = torch.zeros(1, 1, layers, 1, 1, tokens + 1, tokens + 1)
    latent[..., 1] = 1.0
    answer = torch.eye(tokens + 1).expand(1, layers, 1, 1, tokens + 1, tokens + 1).clone()
    answer[..., 0, :] = 0.0
    answer[..., 0, 1] = 1.0
    shares = derive.step_rollout(AttentionMaps(latent, answer, "add"), step=1, b=0, head=None)
    assert shares["y"] + shares["x"].sum() + shares["z"].sum() == pytest.approx(1.0)
    assert int(np.argmax(shares["x"])) == 0
    assert shares["x"][0] > 2 * shares["x"][1:].max()


def test_halting_step_and_the_notes_on_changed_predictions():
    from app import derive
    assert derive.halting_step(np.array([0.1, 0.4, 0.5, 0.9])) == 3
    assert derive.halting_step(np.array([0.1, 0.2])) is None
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.9, 0.1]])
    assert derive.prediction_changes(probs, ["cat", "dog"]) == ["step 2: cat -> dog", "step 4: dog -> cat"]


def write_logs(*runs: tuple[Path, int]) -> None:
    """A train_log.csv of ``epochs`` rows in each folder."""
    row = dict.fromkeys(LOG_FIELDS, 0.5)
    for folder, epochs in runs:
        folder.mkdir(exist_ok=True)
        with open(folder / "train_log.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows({**row, "epoch": e} for e in range(1, epochs + 1))


def test_a_run_trained_in_stages_shows_them_as_one_training_history(tmp_path):
    from app.checkpoints import read_files
    from app.views.analysis import train_log_figures
    torch.manual_seed(0)
    run_dir = tmp_path / "warm"
    vitrm.save(ViTRM(TINY), run_dir)
    write_logs((run_dir / "stage1", 3), (run_dir / "stage2", 2), (run_dir, 2))
    log = read_files(run_dir).train_log
    assert log["epoch"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert log["stage"].tolist() == [1, 1, 1, 2, 2, 3, 3]
    loss, _ = train_log_figures(log)
    assert [s["x0"] for s in loss.to_dict()["layout"]["shapes"]] == [3.5, 5.5]


def test_runs_averaged_into_the_checkpoint_are_drawn_over_the_last_stage(tmp_path):
    from app.checkpoints import read_files
    from app.views.analysis import train_log_figures
    torch.manual_seed(0)
    run_dir = tmp_path / "soup"
    vitrm.save(ViTRM(TINY), run_dir)
    write_logs((run_dir / "stage1", 3), (run_dir, 2), (run_dir / "stage2b", 2))
    log = read_files(run_dir).train_log
    assert log["epoch"].tolist() == [1, 2, 3, 4, 5, 4, 5]
    assert log["run"].tolist() == ["", "", "", "", "", "2b", "2b"]
    loss, acc = train_log_figures(log)
    assert [s["x0"] for s in loss.to_dict()["layout"]["shapes"]] == [3.5]       # one warm start, not two
    dashed = [t for t in acc.data if t.name.endswith("run 2b")]
    assert dashed and all(list(t.x) == [4, 5] and t.line.dash == "dash" for t in dashed)


def test_the_whole_odd_file_corpus_in_one_upload_gets_a_line_per_file_and_no_crash(app, lab):
    from testkit.oddfiles import odd_files
    corpus = odd_files()
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Upload")
    run(at)
    files = [(name, data, "application/octet-stream") for name, (data, _) in corpus.items()]
    files.append(("good.png", png_bytes(seed=9), "image/png"))
    at.file_uploader[0].set_value(files)
    run(at)
    assert not at.exception
    table = at.table[0].value.set_index("file")
    assert len(table) == len(files)
    for name, (_data, valid) in corpus.items():
        if valid:
            assert table.loc[name, "prediction"] in TINY.class_names, name
        else:
            assert table.loc[name, "prediction"] == "", name
            assert table.loc[name, "message"].startswith(f"{name}: "), table.loc[name, "message"]
    assert table.loc["good.png", "prediction"] == expected_at(lab / "vitrm-tiny", png_bytes(seed=9),
                                                              TINY.trained_steps)[0]


def test_curves_and_baselines_are_labelled_with_their_training_budget():
    # A 26-epoch flagship next to 2-epoch baselines must not read as a like-for-like comparison.
    from app.summaries import budget_label
    assert budget_label({"name": "cnn-cifar10", "epochs_logged": 2}) == "cnn-cifar10 (2 epochs)"
    assert budget_label({"name": "untrained", "epochs_logged": None}) == "untrained"
