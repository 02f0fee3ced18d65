"""``python -m vitrm evaluate`` and ``predict``: what they write, and that it all adds up.

The checkpoints here are untrained tiny models: consistency between metrics.json, the
per-image table and the model's own trace does not need a good model.
"""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import vitrm
from testkit.fakedata import CIFAR10_CLASSES, write_imagefolder
from vitrm.__main__ import main
from vitrm.analysis import (
    confusion_matrix,
    evenly_spaced,
    expected_calibration_error,
    halting_analysis,
    halting_budget,
    halting_curve,
    normalize,
)
from vitrm.data import load_split

ROOT = Path(__file__).resolve().parents[1]
CLASSES = tuple(CIFAR10_CLASSES[:3])
LABELS = dict(num_classes=3, class_names=CLASSES)
TINY = dict(dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, **LABELS)
TINY_CNN = vitrm.CNNConfig(cnn_widths=(8, 16), **LABELS)


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vitrm", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def save_tiny(path, seed=0, config=None, **overrides) -> Path:
    """A tiny ViTRM with ``overrides``, or the model of ``config``, saved at ``path``."""
    torch.manual_seed(seed)
    vitrm.save(vitrm.build_model(config or vitrm.ViTRMConfig(**(TINY | overrides))), path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagefolder(tmp_path_factory.mktemp("data") / "tiny", CLASSES, train_per_class=2, test_per_class=7)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def evaluate(checkpoint, folder, cache, *extra):
    """In-process CLI; returns (status, stdout, stderr) via the caller's capsys."""
    return main(["evaluate", "--checkpoint", str(checkpoint), "--data", f"imagefolder:{folder}",
                 "--cache-dir", str(cache), "--quiet", *map(str, extra)])


# --------------------------------------------------------------------------- the metric functions

def test_ece_is_the_weighted_gap_between_confidence_and_accuracy_per_bin():
    # Bin (0.8667, 0.9333]: confidences 0.9, 0.9, accuracy 1/2 -> gap 0.4, weight 2/4.
    # Bin (0.2667, 0.3333]: confidences 0.3, 0.3, accuracy 1/2 -> gap 0.2, weight 2/4.
    conf = torch.tensor([0.9, 0.9, 0.3, 0.3])
    correct = torch.tensor([True, False, True, False])
    assert expected_calibration_error(conf, correct) == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    assert expected_calibration_error(torch.tensor([1.0, 1.0]), torch.tensor([True, True])) == 0.0


def test_confusion_rows_are_true_classes_and_columns_predictions():
    m = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_halting_stops_at_the_first_confident_step_or_runs_every_step():
    halt = torch.tensor([[0.9, 0.1, 0.2],    # step 1
                         [0.1, 0.6, 0.3],    # step 2
                         [0.9, 0.9, 0.4]])   # step 3
    correct = torch.tensor([[True, False, False],
                            [False, True, False],
                            [False, False, True]])
    h = halting_analysis(halt, correct)
    # Image 0 stops at step 1 (right), image 1 at step 2 (right), image 2 never halts: step 3 (right).
    assert h["halt_step_histogram"] == [1, 1, 1]
    assert h["adaptive_top1"] == 1.0
    assert h["adaptive_mean_steps"] == 2.0
    assert h["fixed_top1"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_the_halting_curve_trades_steps_for_accuracy_threshold_by_threshold():
    # Two images; both are right only from step 3 on. The head is sure early for image 0 (wrongly).
    halt = torch.tensor([[0.7, 0.1],
                         [0.8, 0.2],
                         [0.9, 0.95]])
    correct = torch.tensor([[False, False],
                            [False, False],
                            [True, True]])
    curve = halting_curve(halt, correct, thresholds=(0.5, 0.75, 0.95))
    # 0.5: image 0 stops at step 1 (wrong), image 1 at 3. 0.75: 2 (wrong) and 3. 0.95: neither halts
    # before step 3 (image 0 never reaches 0.95, so it runs all three steps).
    assert curve["mean_steps"].tolist() == [2.0, 2.5, 3.0]
    assert curve["top1"].tolist() == [0.5, 0.5, 1.0]


def test_the_halting_budget_is_the_fewest_steps_within_the_tolerance_or_none():
    curve = pd.DataFrame({"threshold": [0.5, 0.75, 0.95], "mean_steps": [2.0, 2.5, 3.0],
                          "top1": [0.5, 0.996, 1.0]})
    budget = halting_budget(curve, reference_top1=1.0, tolerance=0.005, reference_step=3)
    assert (budget["threshold"], budget["mean_steps"], budget["top1"]) == (0.75, 2.5, 0.996)
    assert halting_budget(curve, reference_top1=1.0, tolerance=0.001)["threshold"] == 0.95
    assert halting_budget(curve.iloc[:1], reference_top1=1.0) is None


def test_metrics_of_a_recursive_model_carry_the_curve_and_the_budget_at_the_trained_n():
    halt = torch.tensor([[0.9, 0.1], [0.2, 0.9], [0.9, 0.9]])
    correct = torch.tensor([[True, False], [True, True], [True, True]])
    h = halting_analysis(halt, correct, reference_step=2)
    assert h["budget"]["reference_step"] == 2 and h["budget"]["reference_top1"] == 1.0
    assert h["budget"]["top1"] == 1.0 and h["budget"]["mean_steps"] == 1.5
    assert len(h["curve"]["threshold"]) == len(h["curve"]["top1"]) == len(h["curve"]["mean_steps"])


def test_limit_spreads_the_images_over_the_split():
    assert evenly_spaced(10, None).tolist() == list(range(10))
    assert evenly_spaced(100, 10).tolist() == list(range(0, 100, 10))
    assert len(evenly_spaced(103, 10)) == 10


# --------------------------------------------------------------------------- evaluate end to end

def test_evaluate_writes_metrics_and_a_table_that_agree_with_each_other_and_the_model(tmp_path, folder, cache):
    ckpt = save_tiny(tmp_path / "ckpt")
    result = run_cli("evaluate", "--checkpoint", ckpt, "--data", f"imagefolder:{folder}", "--max-steps", 3,
                     "--batch-size", 8, "--cache-dir", cache)
    assert result.returncode == 0, result.stderr
    assert "top1" in result.stdout and "mean halt prob" in result.stdout   # the printed summary

    m = json.loads((ckpt / "metrics.json").read_text())
    table = pd.read_csv(ckpt / "predictions.csv.gz", keep_default_na=False)
    n, S, C = 21, 3, 3
    expected_keys = {"data", "split", "data_note", "num_images", "arch", "parameters", "trained_steps", "max_steps",
                     "class_names", "top1_by_step", "top5_by_step", "per_class_by_step", "confusion_by_step",
                     "ece_by_step", "halting", "subset", "seconds", "images_per_second", "evaluated_at", "device"}
    assert expected_keys <= set(m)
    assert (m["data"], m["split"], m["data_note"], m["arch"]) == (f"imagefolder:{folder}", "test", "", "vitrm")
    assert (m["num_images"], m["max_steps"], m["trained_steps"]) == (n, S, 2)
    assert m["class_names"] == list(CLASSES)
    assert m["parameters"] == vitrm.num_parameters(vitrm.load(ckpt))
    assert [len(m[k]) for k in ("top1_by_step", "top5_by_step", "per_class_by_step", "confusion_by_step",
                                "ece_by_step")] == [S] * 5

    # The table: one row per image, four columns per step, paths relative to the imagefolder root.
    assert list(table.columns[:5]) == ["index", "path", "label", "label_name", "halt_step"]
    assert list(table.columns[5:]) == [f"{c}_{s}" for s in range(1, S + 1)
                                       for c in ("pred", "conf", "prob_true", "halt")]
    assert len(table) == n and table["index"].tolist() == list(range(n))
    assert all((folder / p).is_file() and p.startswith("test/") for p in table["path"])
    assert [CLASSES[i] for i in table["label"]] == table["label_name"].tolist()

    # Every per-step figure, recomputed from the table.
    for s in range(1, S + 1):
        pred, label = table[f"pred_{s}"], table["label"]
        assert m["top1_by_step"][s - 1] == (pred == label).sum() / n
        confusion = m["confusion_by_step"][s - 1]
        assert sum(map(sum, confusion)) == n
        assert sum(confusion[c][c] for c in range(C)) / n == m["top1_by_step"][s - 1]
        for c in range(C):
            assert confusion[c] == [int(((label == c) & (pred == p)).sum()) for p in range(C)]
            assert m["per_class_by_step"][s - 1][c] == pytest.approx(confusion[c][c] / sum(confusion[c]))
        assert (table[f"prob_true_{s}"] <= table[f"conf_{s}"] + 1e-6).all()
        assert m["top5_by_step"][s - 1] == 1.0          # three classes: the true one is always in the top 5
        assert 0 <= m["ece_by_step"][s - 1] <= 1

    # Halting, recomputed from the table's halting probabilities.
    halt = torch.tensor(table[[f"halt_{s}" for s in range(1, S + 1)]].to_numpy(dtype=float)).T
    h = m["halting"]
    assert (h["threshold"], h["rule"]) == (0.5, "stop at the first step whose halting probability >= threshold, "
                                                "else at max_steps")
    reached = [next((s for s in range(1, S + 1) if halt[s - 1, i] >= 0.5), S) for i in range(n)]
    assert table["halt_step"].astype(int).tolist() == reached
    assert h["halt_step_histogram"] == [reached.count(s) for s in range(1, S + 1)]
    assert h["adaptive_mean_steps"] == pytest.approx(sum(reached) / n)
    chosen = [table[f"pred_{reached[i]}"][i] == table["label"][i] for i in range(n)]
    assert h["adaptive_top1"] == pytest.approx(sum(chosen) / n)
    assert h["fixed_top1"] == m["top1_by_step"]

    every_10th = table[table["index"] % 10 == 0]
    assert m["subset"]["num_images"] == len(every_10th) == 3
    assert m["subset"]["top1_by_step"] == pytest.approx(
        [(every_10th[f"pred_{s}"] == every_10th["label"]).mean() for s in range(1, S + 1)])

    # And the table says what the model says when traced directly.
    model = vitrm.load(ckpt)
    split = load_split(f"imagefolder:{folder}", "test", cache_dir=cache)
    trace = model.trace(normalize(split.images, model.config.mean, model.config.std), S, attention=False)
    for s in range(1, S + 1):
        assert table[f"pred_{s}"].tolist() == trace.logits[s - 1].argmax(-1).tolist()
        assert table[f"halt_{s}"].to_numpy() == pytest.approx(trace.halt[s - 1].numpy(), abs=1e-5)
        assert table[f"conf_{s}"].to_numpy() == pytest.approx(trace.probs[s - 1].max(-1).values.numpy(), abs=1e-5)


def test_max_steps_defaults_to_twice_the_trained_count(tmp_path, folder, cache, capsys):
    ckpt = save_tiny(tmp_path / "ckpt")
    assert evaluate(ckpt, folder, cache, "--limit", 5) == 0
    m = vitrm.read_metrics(ckpt)
    assert m["max_steps"] == 4 and len(m["top1_by_step"]) == 4
    assert m["num_images"] == 5
    assert pd.read_csv(ckpt / "predictions.csv.gz")["index"].tolist() == evenly_spaced(21, 5).tolist()


@pytest.mark.parametrize("arch, config", [("vit", vitrm.ViTConfig(dim=16, heads=2, layers=2, **LABELS)),
                                          ("cnn", TINY_CNN)])
def test_a_baseline_has_one_step_and_no_halting(tmp_path, folder, cache, capsys, arch, config):
    ckpt = save_tiny(tmp_path / arch, config=config)
    assert evaluate(ckpt, folder, cache) == 0
    m = vitrm.read_metrics(ckpt)
    assert (m["arch"], m["max_steps"], m["trained_steps"]) == (arch, 1, 1)
    assert len(m["top1_by_step"]) == len(m["confusion_by_step"]) == 1
    assert m["halting"] is None
    table = pd.read_csv(ckpt / "predictions.csv.gz")
    assert table["halt_step"].isna().all() and table["halt_1"].isna().all()
    assert m["top1_by_step"][0] == (table["pred_1"] == table["label"]).mean()
    assert "mean halt prob" not in capsys.readouterr().out


# --------------------------------------------------------------------------- refusing bad input

def assert_one_clear_line(status, capsys):
    err = capsys.readouterr().err
    assert status != 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def test_a_wrong_checkpoint_path_writes_nothing(tmp_path, folder, cache, capsys):
    missing = tmp_path / "no-such-checkpoint"
    err = assert_one_clear_line(evaluate(missing, folder, cache), capsys)
    assert "no-such-checkpoint" in err
    assert not missing.exists()


@pytest.mark.parametrize("data", ["imagefolder:/no/such/folder", "mnist", "imagefolder:"])
def test_bad_data_writes_nothing_into_the_checkpoint(tmp_path, cache, capsys, data):
    ckpt = save_tiny(tmp_path / "ckpt")
    before = sorted(p.name for p in ckpt.iterdir())
    status = main(["evaluate", "--checkpoint", str(ckpt), "--data", data, "--cache-dir", str(cache), "--quiet"])
    assert_one_clear_line(status, capsys)
    assert sorted(p.name for p in ckpt.iterdir()) == before


def test_data_with_other_classes_is_refused(tmp_path, cache, capsys):
    other = write_imagefolder(tmp_path / "other", ("apple", "pear", "plum"), train_per_class=1, test_per_class=1)
    ckpt = save_tiny(tmp_path / "ckpt")
    err = assert_one_clear_line(evaluate(ckpt, other, cache), capsys)
    assert "classes" in err
    assert not (ckpt / "metrics.json").exists()


@pytest.mark.parametrize("flags", [("--max-steps", 0), ("--max-steps", -1), ("--max-steps", 100_000),
                                   ("--batch-size", 0), ("--limit", 0)])
def test_absurd_evaluate_flags_exit_with_one_line(tmp_path, folder, cache, capsys, flags):
    ckpt = save_tiny(tmp_path / "ckpt")
    err = assert_one_clear_line(evaluate(ckpt, folder, cache, *flags), capsys)
    assert flags[0] in err
    assert not (ckpt / "metrics.json").exists() and vitrm.predictions_file(ckpt) is None


def test_a_baseline_refuses_more_than_one_step(tmp_path, folder, cache, capsys):
    ckpt = save_tiny(tmp_path / "cnn", config=TINY_CNN)
    err = assert_one_clear_line(evaluate(ckpt, folder, cache, "--max-steps", 3), capsys)
    assert "not recursive" in err


def test_max_steps_has_the_step_policys_ceiling_four_times_the_trained_count(tmp_path, folder, cache, capsys):
    ckpt = save_tiny(tmp_path / "ckpt")
    most = vitrm.steps.max_steps(vitrm.read_config(ckpt))
    assert most == 4 * TINY["trained_steps"]
    assert evaluate(ckpt, folder, cache, "--max-steps", most) == 0
    assert len(vitrm.read_metrics(ckpt)["top1_by_step"]) == most
    capsys.readouterr()
    err = assert_one_clear_line(evaluate(ckpt, folder, cache, "--max-steps", most + 1), capsys)
    assert str(most) in err


def test_a_model_trained_with_200_steps_evaluates_and_predicts_with_no_flags(tmp_path, folder, cache, capsys):
    # The old ceiling (256) refused the default 2N = 400: the default and the ceiling now share one owner.
    ckpt = save_tiny(tmp_path / "n200", dim=8, heads=1, trained_steps=200)
    assert evaluate(ckpt, folder, cache) == 0
    metrics = vitrm.read_metrics(ckpt)
    assert (metrics["trained_steps"], metrics["max_steps"], len(metrics["top1_by_step"])) == (200, 400, 400)
    image = next((folder / "test" / "bird").iterdir())
    capsys.readouterr()
    assert main(["predict", str(image), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "step 200:" in out and "step 201:" not in out


# --------------------------------------------------------------------------- predict

def test_predict_prints_every_step_and_reports_a_bad_file_without_stopping(tmp_path, folder):
    ckpt = save_tiny(tmp_path / "ckpt")
    good = next((folder / "test" / "bird").iterdir())
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image")
    result = run_cli("predict", bad, good, "--checkpoint", ckpt, "--steps", 3, "--top-k", 2)
    assert result.returncode == 1
    err_lines = result.stderr.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: notes.jpg:"), result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == str(good)
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["step 1", "step 2", "step 3"]
    model = vitrm.load(ckpt)
    probs = model.trace(model.preprocess(vitrm.load_image(good)), 3, attention=False).probs[:, 0]
    for s, line in enumerate(lines[1:]):
        p, idx = probs[s].topk(2)
        assert line.split(": ", 1)[1].startswith(f"{CLASSES[idx[0]]} {p[0]:.3f}, {CLASSES[idx[1]]} {p[1]:.3f}")
        assert "(halt " in line


def test_predict_defaults_to_the_trained_steps_and_succeeds_on_good_files(tmp_path, folder, capsys):
    ckpt = save_tiny(tmp_path / "ckpt")
    images = sorted((folder / "test" / "airplane").iterdir())[:2]
    assert main(["predict", *map(str, images), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert out.count("step 1:") == 2 and out.count("step 2:") == 2 and "step 3:" not in out


@pytest.mark.parametrize("flags", [("--steps", 0), ("--steps", 100_000), ("--top-k", 0), ("--top-k", 4)])
def test_absurd_predict_flags_exit_with_one_line(tmp_path, folder, capsys, flags):
    ckpt = save_tiny(tmp_path / "ckpt")
    image = next((folder / "test" / "bird").iterdir())
    err = assert_one_clear_line(main(["predict", str(image), "--checkpoint", str(ckpt), *map(str, flags)]), capsys)
    assert flags[0] in err


def test_predict_with_a_wrong_checkpoint_exits_with_one_line(tmp_path, folder, capsys):
    image = next((folder / "test" / "bird").iterdir())
    assert_one_clear_line(main(["predict", str(image), "--checkpoint", str(tmp_path / "nothing")]), capsys)


def test_a_bug_keeps_its_traceback_while_a_users_mistake_is_one_line(monkeypatch, tmp_path, capsys):
    # Only the library's own UserErrors are the user's to fix; a plain ValueError from deep inside is a bug.
    import vitrm.evaluate

    def broken(args):
        raise ValueError("an internal invariant broke")
    monkeypatch.setattr(vitrm.evaluate, "evaluate_cli", broken)
    with pytest.raises(ValueError, match="internal invariant"):
        main(["evaluate", "--checkpoint", str(tmp_path), "--data", "cifar10"])
    monkeypatch.undo()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing"), "--data", "cifar10"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_an_empty_image_is_skipped_and_counted_not_the_end_of_the_run(tmp_path, cache, capsys):
    import shutil
    data = write_imagefolder(tmp_path / "data", CLASSES, train_per_class=1, test_per_class=3)
    (data / "test" / CLASSES[1] / "empty.png").write_bytes(b"")
    ckpt = save_tiny(tmp_path / "ckpt")
    assert evaluate(ckpt, data, cache) == 0
    err = capsys.readouterr().err
    assert "1 unreadable image(s) skipped" in err and "empty.png" in err and "the file is empty" in err
    metrics = vitrm.read_metrics(ckpt)
    assert metrics["num_images"] == 9 and metrics["skipped_images"] == 1
    table = vitrm.read_predictions(ckpt)
    assert len(table) == 9 and not table["path"].str.contains("empty").any()
    # every row names the image it was computed on: the paths line up with the images that were read
    assert table["label_name"].tolist() == [Path(p).parent.name for p in table["path"]]
    shutil.rmtree(data)


def test_quiet_evaluate_prints_no_progress(tmp_path, folder, capsys):
    # A fresh cache: the decoding bar is what --quiet used to leave on.
    ckpt = save_tiny(tmp_path / "ckpt")
    assert evaluate(ckpt, folder, tmp_path / "fresh-cache") == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "decoding" not in captured.out and "evaluating" not in captured.out and "it/s" not in captured.out
