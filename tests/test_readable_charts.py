"""Charts that show their own message: small per-class changes visible, the accuracy curve on its own axis,
readable text, and no toolbar over small maps."""

from __future__ import annotations

import numpy as np
import pytest

from app.views import analysis, attention, attribution, figures, state


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


def test_baselines_off_the_accuracy_axis_get_a_line_each_at_its_edge():
    fig = analysis.accuracy_figure({"m": {"top1": [0.84, 0.85], "trained": 2}}, {"vit": 0.57, "cnn": 0.68})
    shifts = [a.yshift for a in fig.layout.annotations]
    assert len(set(shifts)) == 2, "two labels at the bottom edge must not print over each other"


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


# --------------------------------------------------------------------------- maps over the image

PHOTO = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def attribution_result(method: str, step: int, scale: float, seed: int = 0):
    from app.cache import AttributionResult
    values = np.random.default_rng(seed).normal(size=(32, 32)) * scale
    return AttributionResult(method=method, step=step, target=3, map=np.abs(values) if method == "saliency"
                             else values, seconds=0.1)


def maps_and_photos(fig):
    return ([t for t in fig.data if t.type == "heatmap"], [t for t in fig.data if t.type == "image"])


def rgba_alpha(colour: str) -> float:
    return float(colour.rsplit(",", 1)[1].rstrip(")"))


def test_a_map_is_upsampled_to_the_photo_and_blended_over_it_with_the_photo_showing_through_low_values():
    fig = figures.overlay(PHOTO, np.arange(16.0).reshape(4, 4), title="map", zmin=0, zmax=15)
    (heat,), (photo,) = maps_and_photos(fig)
    assert fig.data.index(photo) < fig.data.index(heat), "the map lies over the photo"
    assert np.asarray(heat.z).shape == (32, 32), "a 4x4 patch grid is upsampled to the photo's pixels"
    z = np.asarray(heat.z)
    assert z[0, 0] == pytest.approx(0, abs=0.5) and z[-1, -1] == pytest.approx(15, abs=0.5)
    assert len(np.unique(z.round(4))) > 16, "interpolated, not blown-up squares"
    low, high = heat.colorscale[0][1], heat.colorscale[-1][1]
    assert rgba_alpha(low) == 0 and rgba_alpha(high) > 0.5, "small values leave the photo visible"


def test_the_attribution_row_over_steps_shares_one_symmetric_scale_and_says_so():
    row = [attribution_result("integrated_gradients", step, scale, seed=step)
           for step, scale in [(1, 0.1), (2, 1.0), (3, 0.5), (4, 2.0), (5, 0.3)]]
    fig = attribution.row_figure(PHOTO, row, [f"c{i}" for i in range(10)])
    heats, photos = maps_and_photos(fig)
    assert len(heats) == len(photos) == 5, "every step's map is drawn over its own copy of the photo"
    assert {h.coloraxis for h in heats} == {"coloraxis"}, "one colour axis for every step"
    bound = max(float(np.abs(r.map).max()) for r in row)
    axis = fig.layout.coloraxis
    assert axis.cmin == pytest.approx(-bound) and axis.cmax == pytest.approx(bound), "symmetric around zero"
    mid = [c for position, c in axis.colorscale if position == 0.5]
    assert mid and rgba_alpha(mid[0]) == 0, "zero is transparent: the photo shows where nothing pushed"
    assert f"±{bound:.2g}" in axis.colorbar.title.text and "all steps" in axis.colorbar.title.text
    assert [a.text for a in fig.layout.annotations] == [f"step {s}" for s in range(1, 6)]
    assert fig.layout.meta == figures.MAP


def test_a_saliency_row_starts_its_shared_scale_at_zero():
    row = [attribution_result("saliency", step, scale, seed=step) for step, scale in [(1, 1.0), (2, 3.0)]]
    axis = attribution.row_figure(PHOTO, row, [f"c{i}" for i in range(10)]).layout.coloraxis
    assert axis.cmin == 0 and axis.cmax == pytest.approx(max(float(r.map.max()) for r in row))


def test_attribution_maps_are_big_enough_to_read():
    row = [attribution_result("occlusion", step, 1.0, seed=step) for step in range(1, 9)]
    fig = attribution.row_figure(PHOTO, row, [f"c{i}" for i in range(10)])
    widths = [fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain for i in range(8)]
    assert min(d[1] - d[0] for d in widths) > 0.2, "at most four maps to a line of the page"
    assert fig.layout.height >= 2 * 250, "eight steps: two lines of maps at least 250 px high"


def test_the_methods_at_one_step_share_one_scale_each_map_scaled_to_its_own_strongest_pixel():
    results = [attribution_result(m, 2, scale, seed=i) for i, (m, scale) in
               enumerate([("integrated_gradients", 0.01), ("saliency", 5.0), ("gradient_shap", 1.0),
                          ("occlusion", 40.0)])]
    fig = attribution.methods_figure(PHOTO, results, [f"c{i}" for i in range(10)])
    heats, _ = maps_and_photos(fig)
    assert {h.coloraxis for h in heats} == {"coloraxis"}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (-1.0, 1.0)
    assert [float(np.abs(np.asarray(h.z)).max()) for h in heats] == pytest.approx([1.0] * 4)
    assert "largest" in fig.layout.coloraxis.colorbar.title.text
    assert [a.text.split(" (")[0] for a in fig.layout.annotations[:4]] == \
        ["Integrated Gradients", "Saliency", "GradientShap", "Occlusion"]


def test_the_latent_size_map_shows_difference_from_the_average_patch_on_one_scale_for_every_step():
    z_norm = 12.0 + np.random.default_rng(1).normal(size=(6, 4, 4)) * 0.1     # LayerNorm: all near one value
    figs = [state.z_size_figure(PHOTO, z_norm, step) for step in (1, 6)]
    (first,), (last,) = (maps_and_photos(f)[0] for f in figs)
    assert (first.zmin, first.zmax) == (last.zmin, last.zmax), "the same scale at every step"
    assert first.zmid == 0 and first.zmin == pytest.approx(-first.zmax)
    assert first.zmax < 0.1, "the scale spans the few percent patches differ by, not 11.7-12.1"
    assert "average" in first.colorbar.title.text and first.colorbar.tickformat == "+.1%"


def test_the_latent_change_map_runs_from_zero_to_the_largest_move_of_any_step():
    change = np.random.default_rng(2).random((5, 4, 4)) * np.arange(1, 6)[:, None, None]
    heat = maps_and_photos(state.z_change_figure(PHOTO, change, 1))[0][0]
    assert heat.zmin == 0 and heat.zmax == pytest.approx(change.max())


def test_the_answer_tokens_attention_uses_the_scale_of_all_steps():
    heat = maps_and_photos(attention.answer_figure(PHOTO, np.full(16, 1 / 16), 4, 1, largest=0.5))[0][0]
    assert (heat.zmin, heat.zmax) == (0, 0.5)


def test_maps_are_drawn_without_a_toolbar_and_other_charts_keep_it(monkeypatch):
    drawn = []
    monkeypatch.setattr(figures.st, "plotly_chart", lambda fig, **kw: drawn.append(kw["config"]))
    figures.show(state.z_change_figure(PHOTO, np.ones((2, 4, 4)), 1))
    figures.show(state.z_pca_figure(PHOTO, np.zeros((2, 4, 4, 3)), 1))
    figures.show(attribution.row_figure(PHOTO, [attribution_result("saliency", 1, 1.0)], ["c"] * 10))
    figures.show(analysis.ece_figure({"m": [0.1, 0.05]}))
    assert [c.get("displayModeBar", True) for c in drawn] == [False, False, False, True]


def test_every_piece_of_chart_text_is_set_to_14_px_over_streamlits_12_px_theme():
    maps = attribution.row_figure(PHOTO, [attribution_result("occlusion", 1, 1.0)], ["c"] * 10)
    for fig in (figures.compact(analysis.ece_figure({"m": [0.1, 0.05]}), 300, "title"), maps,
                state.z_change_figure(PHOTO, np.ones((2, 4, 4)), 1)):
        layout = fig.layout
        assert layout.font.size >= 14 and layout.legend.font.size >= 14
        for axis in [layout[name] for name in layout if name.startswith(("xaxis", "yaxis"))]:
            assert axis.tickfont.size >= 14 and axis.title.font.size >= 14
        for heat in (t for t in fig.data if t.type == "heatmap" and not t.coloraxis):
            assert heat.colorbar.tickfont.size >= 14
    assert maps.layout.coloraxis.colorbar.tickfont.size >= 14
    assert all(a.font.size >= 14 for a in maps.layout.annotations)


# --------------------------------------------------------------------------- issue 29's smaller defects

def test_rollout_colour_bar_ticks_are_round_and_each_says_something_different():
    shares = {"x": np.array([0.0, 0.004, 0.011, 0.025]), "y": 0.5, "z": np.zeros(4)}
    heat = next(t for t in attention.rollout_figure(PHOTO, shares, 2, 1).data if t.type == "heatmap")
    texts = list(heat.colorbar.ticktext)
    assert len(set(texts)) == len(texts) >= 3, f"repeated ticks: {texts}"       # not "1%, 1%, 2%"
    assert heat.zmax == pytest.approx(0.025) and max(heat.colorbar.tickvals) <= 0.025 + 1e-12
    for high in (0.003, 0.02, 0.07, 0.3, 1.0):
        values, texts = attention.percent_ticks(high)
        assert len(set(texts)) == len(texts) >= 3 and values[0] == 0 and values[-1] <= high + 1e-12, (high, texts)


def test_the_trained_n_axis_spans_at_least_ten_points_so_a_small_gain_looks_small():
    from pathlib import Path

    import vitrm
    from app.views import trained_n

    points = [vitrm.SweepPoint(path=Path(f"sweep-N{n}"), trained_steps=n, parameters=1, flops_per_image=1,
                               top1=top1, num_images=100, data=None)
              for n, top1 in ((1, 0.588), (2, 0.592), (4, 0.595))]
    low, high = trained_n.trained_n_figure(points).layout.yaxis.range
    assert high - low >= 0.1 - 1e-9 and low <= 0.588 and high >= 0.595, (low, high)     # not 58.8-59.6%
    high_points = [vitrm.SweepPoint(**{**vars(p), "top1": 0.97 + 0.01 * i}) for i, p in enumerate(points)]
    low, high = trained_n.accuracy_range(high_points)
    assert 0.0 <= low and high <= 1.0 and high - low >= 0.1 - 1e-9, "within 0-100%"


def test_the_training_log_starts_at_its_first_epoch_and_stage_labels_run_up_their_lines(tmp_path):
    import pandas as pd

    stages = [(1, 1, 10), (2, 11, 26), (3, 27, 40), (4, 41, 62), (5, 63, 74)]
    log = pd.DataFrame([{"epoch": e, "stage": s, "train_loss": 1.0 / e, "train_top1": 0.5, "val_top1": 0.5}
                        for s, first, last in stages for e in range(first, last + 1)])
    for fig in analysis.train_log_figures(log):
        low, high = fig.layout.xaxis.range
        assert (low, high) == (0.5, 74.5), "the axis spans the epochs logged (it started at -50)"
        labels = [a for a in fig.layout.annotations if a.text.startswith("stage")]
        assert [a.text for a in labels] == ["stage 2", "stage 3", "stage 4", "stage 5"]
        assert all(a.textangle == -90 for a in labels), "labels along their lines cannot print over each other"


def test_numbers_in_confusion_cells_are_white_on_dark_cells_and_dark_on_light_ones():
    from app.views import error_table

    fig = error_table.clickable_confusion_figure([[90, 10], [40, 60]], ["cat", "dog"], 1)
    colours = list(fig.data[1].textfont.color)       # cells row by row: 90%, 10%, 40%, 60%
    assert colours == ["white", "#1a1a1a", "#1a1a1a", "white"]


def test_the_attribution_row_across_steps_always_holds_the_trained_step():
    assert attribution.row_steps(16, 8) == [1, 3, 5, 8, 10, 12, 14, 16]    # evenly spread, it skipped 8
    for n, trained in ((16, 8), (32, 4), (64, 16), (8, 4), (4, 2), (1, 1), (12, 12)):
        steps = attribution.row_steps(n, trained)
        assert trained in steps and steps[0] == 1 and steps[-1] == n and len(steps) <= 8, (n, trained, steps)


def test_counts_in_words_are_singular_for_one():
    from app.summaries import count
    from app.views import how_it_works
    from vitrm import ViTRMConfig

    assert (count(1, "layer"), count(2, "layer"), count(1, "time", number=False)) == ("1 layer", "2 layers", "once")
    cfg = ViTRMConfig(dim=32, heads=1, layers=1, trained_steps=1, latent_updates=1)
    drawn = how_it_works.diagram(cfg, 1000) + how_it_works.facts_table(cfg, 1000, {}).to_string()
    assert "1 layers" not in drawn and "1 heads" not in drawn and "1 steps" not in drawn and "time(s)" not in drawn
    assert "1 layer" in drawn


def test_the_y_path_names_few_classes_far_enough_apart_and_no_step_text_over_them():
    angles = np.radians([0, 8, 90, 180, 200, 270])
    arrows = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    p = np.array([0.30, 0.25, 0.05, 0.20, 0.15, 0.05])
    assert state.labelled_classes(arrows, p) == [0, 3, 4], "8° from the top class: left unnamed"
    points = np.random.default_rng(0).normal(size=(4, 2))
    probs = np.tile(p, (4, 1))
    fig = state.y_path_figure(points, arrows, np.array([0.6, 0.3]), 2, [f"c{i}" for i in range(6)], probs)
    written = [t for trace in fig.data if "text" in (trace.mode or "") for t in trace.text if t]
    assert written == ["c0", "c3", "c4"], f"text on the plot: {written}"
