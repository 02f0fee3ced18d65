"""Hostile content in the library and on the command line: what a path, a checkpoint's side files or a
dataset folder carries is data, and every way it can be wrong ends in one clear error, within seconds.

The app's side of the same rules (escaping, the sidebar, the galleries, the upload budget) is in
tests/test_app_hostile.py; the fuzz loop over every file of a checkpoint is tests/test_fuzz.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

import vitrm
from testkit.fakedata import CIFAR10_CLASSES, write_imagefolder
from vitrm import CheckpointError, ViTRM, ViTRMConfig, paths, sidefiles
from vitrm.__main__ import main
from vitrm.evaluate import evaluate_checkpoint

CLASSES = tuple(CIFAR10_CLASSES[:3])
TINY = ViTRMConfig(dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, num_classes=3, class_names=CLASSES)


@contextlib.contextmanager
def within(seconds: int):
    """Fail instead of hanging: the operation must finish within ``seconds``."""
    def alarm(*_):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagefolder(tmp_path_factory.mktemp("data") / "tiny", CLASSES, train_per_class=2, test_per_class=4)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, folder):
    """A tiny checkpoint with the metrics.json and predictions.csv that evaluate writes."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), path)
    evaluate_checkpoint(path, f"imagefolder:{folder}", cache_dir=None, progress=False)
    return path


def uncompressed(path: Path) -> Path:
    """The checkpoint with its per-image table as a plain predictions.csv (the older format, still read), so
    that tests can damage it as text."""
    import gzip
    packed = path / "predictions.csv.gz"
    if packed.exists():
        (path / "predictions.csv").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    return path


def copy_of(evaluated: Path, tmp_path: Path) -> Path:
    import shutil
    return uncompressed(Path(shutil.copytree(evaluated, tmp_path / "copy")))


# --------------------------------------------------------------------------- weights

@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    torch.manual_seed(0)
    model = ViTRM(TINY)
    with torch.no_grad():
        model.head.weight[1, 2] = value
    vitrm.save(model, tmp_path / "bad")
    with pytest.raises(CheckpointError, match=r"tensor 'head\.weight' holds non-finite values"):
        vitrm.load(tmp_path / "bad")


def test_non_finite_weights_are_one_line_and_status_2_on_the_command_line(tmp_path, folder, capsys):
    torch.manual_seed(0)
    model = ViTRM(TINY)
    with torch.no_grad():
        model.y_init.fill_(float("nan"))
    vitrm.save(model, tmp_path / "bad")
    image = next((folder / "test" / CLASSES[0]).iterdir())
    assert main(["predict", str(image), "--checkpoint", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite" in err[0] and "y_init" in err[0]


# --------------------------------------------------------------------------- the path rule

def test_a_path_read_from_a_file_stays_inside_its_folder(tmp_path):
    root = tmp_path / "data"
    (root / "test" / "cat").mkdir(parents=True)
    (root / "test" / "cat" / "a.png").write_bytes(b"x")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"x")
    (root / "test" / "cat" / "escape.png").symlink_to(outside)
    assert paths.confine(root, "test/cat/a.png") == (root / "test" / "cat" / "a.png").resolve()
    for bad, why in [(str(outside), "only a path relative"), ("/etc/passwd", "only a path relative"),
                     ("../secret.png", "outside the data folder"), ("test/../../secret.png", "outside the data folder"),
                     ("test/cat/escape.png", "outside the data folder"), ("~/x.png", "only a path relative"),
                     ("a\x00b.png", "NUL byte"), ("x" * 6000, "characters long"), ("d/" + "y" * 300, "bytes long"),
                     ("", "only a path relative")]:
        with pytest.raises(paths.UnsafePathError, match=why):
            paths.confine(root, bad)


def test_a_nul_byte_or_a_six_thousand_character_path_is_a_checkpoint_error_not_a_traceback(tmp_path):
    for bad in ["ckpt\x00/x", "c" * 6000, str(tmp_path / ("n" * 300))]:
        with pytest.raises(CheckpointError):
            vitrm.load(bad)
        with pytest.raises(CheckpointError):
            vitrm.read_config(bad)
        with pytest.raises(vitrm.InvalidImageError):
            vitrm.load_image(bad)


# --------------------------------------------------------------------------- dataset folders

def test_a_folder_that_links_to_its_parent_is_not_followed_and_every_image_counts_once(tmp_path, folder, capsys):
    import shutil
    data = Path(shutil.copytree(folder, tmp_path / "looped"))
    cls = data / "test" / CLASSES[0]
    (cls / "loop").symlink_to(cls, target_is_directory=True)          # a class folder holding a link to itself
    (cls / "up").symlink_to(data / "test", target_is_directory=True)  # and one to its parent
    os.mkfifo(cls / "fifo.png")                                         # reading it would block forever
    (cls / "dangling.png").symlink_to(tmp_path / "nothing-here.png")
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), tmp_path / "ckpt")
    with within(60):
        metrics = evaluate_checkpoint(tmp_path / "ckpt", f"imagefolder:{data}", cache_dir=None, progress=False)
    assert metrics["num_images"] == 4 * len(CLASSES)
    listing = paths.scan_imagefolder(data / "test")
    assert len(listing.samples) == 4 * len(CLASSES)
    assert listing.skipped == {"linked folders (not followed)": 2,
                               "entries that are not regular files (FIFOs, devices)": 1,
                               "broken links or unreadable files": 1}
    assert "skipped" in capsys.readouterr().err


def test_the_cli_on_a_looped_folder_finishes_in_seconds_with_one_warning_line(tmp_path, folder, capsys):
    import shutil
    data = Path(shutil.copytree(folder, tmp_path / "looped"))
    (data / "test" / CLASSES[1] / "again").symlink_to(data / "test" / CLASSES[1], target_is_directory=True)
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), tmp_path / "ckpt")
    with within(60):
        status = main(["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--data", f"imagefolder:{data}",
                       "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert status == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 linked folders (not followed)" in warnings[0]


# --------------------------------------------------------------------------- side files

def _metrics(evaluated: Path) -> dict:
    return json.loads((evaluated / "metrics.json").read_text())


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


METRICS_DAMAGE = {
    "not JSON": (lambda m: "{oops", "not valid JSON"),
    "NaN": (lambda m: json.dumps(m).replace('"top1_by_step": [', '"top1_by_step": [NaN, ', 1), "not valid JSON"),
    "5000-digit integer": (lambda m: json.dumps({**m, "num_images": 0}).replace('"num_images": 0', '"num_images": '
                                                                                  + "9" * 5000), "not valid JSON"),
    "nested 100,000 deep": (lambda m: _deep(100_000), "nested"),
    "nested 20 deep": (lambda m: json.dumps({**m, "subset": json.loads(_deep(20))}), "nested more than"),
    "a list instead of an object": (lambda m: "[]", "must be a JSON object"),
    "missing a curve": (lambda m: json.dumps({k: v for k, v in m.items() if k != "ece_by_step"}),
                        "missing ece_by_step"),
    "a string for a number": (lambda m: json.dumps({**m, "top1_by_step": ["high"] * len(m["top1_by_step"])}),
                              "must be a finite number"),
    "accuracy over 1": (lambda m: json.dumps({**m, "top1_by_step": [2.0] * len(m["top1_by_step"])}), "outside"),
    "curves of different lengths": (lambda m: json.dumps({**m, "top5_by_step": m["top5_by_step"][:-1]}), "entries"),
    "a short confusion matrix": (lambda m: json.dumps({**m, "confusion_by_step": [row[:-1] for row in
                                                                                   m["confusion_by_step"]]}), "rows"),
    "a negative count": (lambda m: json.dumps({**m, "confusion_by_step": [[[-1] * 3] * 3] * len(m["top1_by_step"])}),
                         "outside"),
    "too few class names": (lambda m: json.dumps({**m, "class_names": ["a"]}), "class_names"),
    "a number as data note": (lambda m: json.dumps({**m, "data_note": 7}), "data_note must be a string"),
    "halting of the wrong shape": (lambda m: json.dumps({**m, "halting": {**m["halting"], "fixed_top1": [0.5]}}),
                                   "halting.fixed_top1"),
}


@pytest.mark.parametrize("case", METRICS_DAMAGE)
def test_a_damaged_metrics_json_is_a_checkpoint_error_naming_the_file(case, evaluated, tmp_path):
    path = copy_of(evaluated, tmp_path)
    damage, says = METRICS_DAMAGE[case]
    (path / "metrics.json").write_text(damage(_metrics(evaluated)))
    with within(10), pytest.raises(CheckpointError, match=says) as error:
        vitrm.read_metrics(path)
    assert "metrics.json" in str(error.value) and "\n" not in str(error.value)


def test_a_gzip_bomb_in_place_of_the_table_is_refused_unpacked(evaluated, tmp_path):
    import gzip
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "bomb"))
    (path / "predictions.csv.gz").write_bytes(gzip.compress(b"index," + b"0" * (sidefiles.MAX_CSV_BYTES + 10)))
    with within(20), pytest.raises(CheckpointError, match="unpacks to more than the limit"):
        sidefiles.read_predictions(path, 3)


def test_side_files_over_their_size_cap_are_refused_unparsed(evaluated, tmp_path, monkeypatch):
    path = copy_of(evaluated, tmp_path)
    monkeypatch.setattr(sidefiles, "MAX_JSON_BYTES", 1000)
    monkeypatch.setattr(sidefiles, "MAX_CSV_BYTES", 1000)
    with pytest.raises(CheckpointError, match="larger than the limit"):
        sidefiles.read_metrics(path)
    with pytest.raises(CheckpointError, match="larger than the limit"):
        sidefiles.read_predictions(path, 3)


def test_the_real_caps_hold_a_full_evaluation_and_refuse_far_more():
    # A metrics.json of 100 classes and 256 steps (the CLI's most) and a predictions.csv of
    # 10,000 images and 64 steps fit; 400 MB and 285 MB files (the sizes that hurt) do not.
    assert 100 * 100 * 256 * 6 < sidefiles.MAX_JSON_BYTES < 400 * 2**20
    assert 10_000 * (5 + 4 * 64) * 9 < sidefiles.MAX_CSV_BYTES < 285 * 2**20


def _predictions(evaluated: Path) -> pd.DataFrame:
    return pd.read_csv(vitrm.predictions_file(evaluated), keep_default_na=False)


PREDICTION_DAMAGE = {
    "a missing column": (lambda t: t.drop(columns=["conf_2"]), "missing columns conf_2"),
    "no step columns": (lambda t: t[["index", "path", "label", "label_name", "halt_step"]], "pred_1 .. pred_N"),
    "a class index out of range": (lambda t: t.assign(pred_1=99), "pred_1 on row 1 is 99"),
    "a negative label": (lambda t: t.assign(label=-1), "label on row 1 is -1"),
    "text where a class index belongs": (lambda t: t.assign(pred_2="cat"), "expected types"),
    "a probability over 1": (lambda t: t.assign(conf_1=1.5), "conf_1 on row 1 is 1.5"),
    "infinity": (lambda t: t.assign(prob_true_1="inf"), "prob_true_1"),
    "a halting step past the last step": (lambda t: t.assign(halt_step=1000), "halt_step"),
    "a column twice": (lambda t: pd.concat([t, t[["conf_1"]]], axis=1), "repeats a column name"),
}


@pytest.mark.parametrize("case", PREDICTION_DAMAGE)
def test_a_damaged_predictions_csv_is_a_checkpoint_error_naming_the_file(case, evaluated, tmp_path):
    path = copy_of(evaluated, tmp_path)
    damage, says = PREDICTION_DAMAGE[case]
    damage(_predictions(evaluated)).to_csv(path / "predictions.csv", index=False)
    steps = len(_metrics(evaluated)["top1_by_step"])
    with pytest.raises(CheckpointError, match=says) as error:
        sidefiles.read_predictions(path, 3, steps)
    assert "predictions.csv" in str(error.value)


def test_predictions_with_other_steps_than_metrics_are_refused(evaluated, tmp_path):
    with pytest.raises(CheckpointError, match="steps of predictions but metrics.json has 3"):
        sidefiles.read_predictions(evaluated, 3, steps=3)


def test_a_table_saved_with_a_byte_order_mark_reads_as_without(evaluated, tmp_path):
    path = copy_of(evaluated, tmp_path)
    table = path / "predictions.csv"
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
    steps = len(_metrics(evaluated)["top1_by_step"])
    pd.testing.assert_frame_equal(sidefiles.read_predictions(path, 3, steps),
                                  sidefiles.read_predictions(evaluated, 3, steps))


def test_what_evaluate_writes_passes_its_own_validation(evaluated):
    metrics = vitrm.read_metrics(evaluated)
    table = sidefiles.read_predictions(evaluated, 3, len(metrics["top1_by_step"]))
    assert len(table) == metrics["num_images"]
    assert table["path"].map(lambda p: not Path(p).is_absolute()).all()


@pytest.mark.parametrize("text, says", [
    ('{"data": 5}', "data must be a string"),
    ('{"epochs": "ten"}', "epochs must be an integer"),
    ('{"model": []}', "model must be a JSON object"),
    ("[" * 50 + "]" * 50, "nested more than"),
])
def test_a_damaged_train_config_is_a_checkpoint_error(tmp_path, text, says):
    (tmp_path / "train_config.json").write_text(text)
    with pytest.raises(CheckpointError, match=says):
        sidefiles.read_train_config(tmp_path)


@pytest.mark.parametrize("text, says", [
    ("loss\n0.5\n", "missing the epoch column"),
    ("epoch,train_loss\n1,lots\n", "expected types"),
    ("epoch,train_loss\n0,0.5\n", "counted from 1"),
    ("epoch,train_loss\n1,inf\n", "infinite"),
])
def test_a_damaged_train_log_is_a_checkpoint_error(tmp_path, text, says):
    (tmp_path / "train_log.csv").write_text(text)
    with pytest.raises(CheckpointError, match=says):
        sidefiles.read_train_log(tmp_path)


def test_a_side_file_that_is_a_fifo_is_treated_as_absent_not_read(tmp_path):
    os.mkfifo(tmp_path / "metrics.json")
    with within(5):
        assert sidefiles.read_metrics(tmp_path, num_classes=3) is None


# --------------------------------------------------------------------------- the command line

def _refused(status: int, capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_predicting_a_proc_file_a_fifo_or_a_directory_says_why_per_file(tmp_path, evaluated, capsys):
    os.mkfifo(tmp_path / "pipe.png")
    with within(30):
        status = main(["predict", "/proc/self/mem", str(tmp_path / "pipe.png"), str(tmp_path),
                       "--checkpoint", str(evaluated)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 3, err
    assert err[0].startswith("error: mem: cannot be read") or "not a recognised image" in err[0] or "empty" in err[0]
    assert "pipe.png: not a file" in err[1] and "not a file" in err[2]


@pytest.mark.parametrize("argv, says", [
    (["predict", "x.png", "--checkpoint", "ckpt\x00"], "NUL byte"),
    (["predict", "x.png", "--checkpoint", "c" * 6000], "characters long"),
    (["evaluate", "--checkpoint", "n" * 300, "--data", "cifar10"], "bytes long"),
    (["evaluate", "--checkpoint", "EVALUATED", "--data", "imagefolder:a\x00b"], "NUL byte"),
])
def test_unusable_paths_are_one_line_and_status_2(argv, says, evaluated, capsys):
    argv = [str(evaluated) if a == "EVALUATED" else a for a in argv]
    assert says in _refused(main(argv), capsys)


def test_average_onto_an_existing_file_is_one_line_and_status_2(tmp_path, evaluated, capsys):
    (tmp_path / "taken").write_text("not a directory")
    line = _refused(main(["average", str(evaluated), str(evaluated), "--out", str(tmp_path / "taken")]), capsys)
    assert "is not a directory" in line
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_an_unusable_path_is_a_user_error_and_a_bug_keeps_its_traceback():
    from vitrm.errors import is_user_error
    assert is_user_error(paths.UnsafePathError("x: a path cannot contain a NUL byte"))
    assert not is_user_error(RuntimeError("a bug")) and not is_user_error(OSError(28, "No space left on device"))


# --------------------------------------------------------------------------- work per image

# The probe's compute bomb: 840 KB of weights, 12 s a step, and the app traced 2N = 2,048 steps of it.
COMPUTE_BOMB = {"arch": "vitrm", "image_size": 4, "in_channels": 3, "num_classes": 2, "class_names": ["a", "b"],
                "mean": [0.5] * 3, "std": [0.25] * 3, "tokenizer": "patch", "patch_size": 1, "dim": 4, "heads": 1,
                "mlp_ratio": 2.0, "layers": 512, "latent_updates": 64, "combine": "concat", "trained_steps": 1024,
                "dropout": 0.0}
# Few layer applications, but each over 4,096 tokens: the arithmetic is the bomb.
FLOPS_BOMB = {**COMPUTE_BOMB, "image_size": 64, "dim": 16, "layers": 1, "latent_updates": 1, "combine": "add",
              "trained_steps": 64}


def _with_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "ckpt"
    vitrm.save(ViTRM(TINY), path)
    (path / "config.json").write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("raw, figure, cap, steps", [
    (COMPUTE_BOMB, "136,314,880 transformer layer applications", f"{vitrm.config.MAX_LAYER_CALLS:,}", "4,096"),
    (FLOPS_BOMB, "558.6 GFLOP", f"{vitrm.config.MAX_FLOPS // 10**9:,} GFLOP", "256")], ids=["layers", "flops"])
def test_a_config_asking_for_too_much_work_per_image_is_refused_naming_the_figure_and_the_cap(
        tmp_path, raw, figure, cap, steps):
    path = _with_config(tmp_path, raw)
    with within(10), pytest.raises(CheckpointError) as error:
        vitrm.load(path)
    message = str(error.value)
    assert figure in message and f"over the limit of {cap}" in message and f"{steps} steps" in message
    assert "config.json" in message and "\n" not in message


def test_the_work_budget_counts_at_the_apps_largest_step_count():
    # Just inside at the trained N, over at STEP_FACTOR x N: the app's scrubber would run it that far.
    from vitrm.config import MAX_LAYER_CALLS, estimate_work, parse_model_config
    from vitrm.steps import max_steps
    raw = {**COMPUTE_BOMB, "layers": 8, "latent_updates": 1, "trained_steps": 1024}
    cfg = ViTRMConfig(**{k: v for k, v in raw.items() if k != "arch"})
    assert estimate_work(cfg)[0] <= MAX_LAYER_CALLS < estimate_work(cfg, max_steps(cfg))[0]
    with pytest.raises(vitrm.config.ConfigError, match="layer applications"):
        parse_model_config(raw)


def test_shipped_checkpoints_are_well_inside_the_work_budget():
    from vitrm.config import MAX_FLOPS, MAX_LAYER_CALLS, estimate_work
    from vitrm.steps import max_steps
    shipped = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "checkpoints").glob("*/config.json"))
    assert shipped
    for path in shipped:
        cfg = vitrm.read_config(path)
        calls, flops = estimate_work(cfg, max_steps(cfg))
        assert calls * 100 <= MAX_LAYER_CALLS and flops * 100 <= MAX_FLOPS, path.name     # room: 100x or more


@pytest.mark.parametrize("cfg", [
    ViTRMConfig(dim=16, heads=2, layers=2, latent_updates=2, trained_steps=3, combine="add"),
    ViTRMConfig(dim=16, heads=2, layers=1, latent_updates=1, trained_steps=2, mlp="swiglu", mlp_hidden=24),
    ViTRMConfig(dim=16, heads=2, layers=1, latent_updates=3, trained_steps=2, combine="concat", patch_size=8),
    ViTRMConfig(dim=32, heads=2, layers=1, latent_updates=1, trained_steps=2, tokenizer="conv", patch_size=8,
                conv_stages=1),
    ViTRMConfig(dim=32, heads=2, layers=1, latent_updates=1, trained_steps=2, tokenizer="conv", patch_size=4),
    vitrm.ViTConfig(dim=16, heads=2, layers=3),
    vitrm.CNNConfig(cnn_widths=(8, 16, 32)),
], ids=["vitrm-add", "vitrm-swiglu", "vitrm-concat", "vitrm-conv1", "vitrm-conv-full", "vit", "cnn"])
def test_the_work_estimate_is_an_upper_bound_close_to_torchs_count(cfg, monkeypatch):
    # torch's counter counts nothing for the fused attention on this CPU build: spelled out as matmuls, it does.
    import math

    def attention(q, k, v, **_):
        return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ v
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", attention)
    from vitrm.config import estimate_work
    model = vitrm.build_model(cfg).eval()
    steps = cfg.trained_steps if cfg.recursive else None
    counted = vitrm.flops_per_image(model, steps)
    estimated = estimate_work(cfg, steps)[1]
    assert counted <= estimated <= 1.05 * counted


# --------------------------------------------------------------------------- the one gate: ood.json, stages, links

def _with_ood(evaluated: Path, tmp_path: Path) -> Path:
    from vitrm import ood
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "ood"))
    generator = torch.Generator().manual_seed(0)
    rule = ood.fit(torch.randn(60, TINY.dim, generator=generator), torch.arange(60) % 3,
                   torch.randn(20, TINY.dim, generator=generator))
    ood.save(rule, path)
    return path


OOD_DAMAGE = {
    "a string for a count": (lambda f: json.dumps({**f, "val_images": "5000"}), "val_images must be an integer"),
    "a string for the threshold": (lambda f: json.dumps({**f, "threshold": "187.1"}), "threshold must be a finite"),
    "a rate over 1": (lambda f: json.dumps({**f, "val_false_alarm": 5}), "outside 0..1"),
    "nested 200,000 deep": (lambda f: _deep(200_000), "nested"),
    "no rule": (lambda f: json.dumps({k: v for k, v in f.items() if k != "rule"}), "rule must be a string"),
    "a list of numbers for the missed names": (lambda f: json.dumps({**f, "outside_missed": [1, 2]}),
                                               "outside_missed"),
    "an unknown feature": (lambda f: json.dumps({**f, "feature": "x"}), "feature"),
}


@pytest.mark.parametrize("case", OOD_DAMAGE)
def test_a_damaged_ood_json_is_a_checkpoint_error_naming_the_file(case, evaluated, tmp_path):
    from vitrm import ood
    path = _with_ood(evaluated, tmp_path)
    damage, says = OOD_DAMAGE[case]
    facts = json.loads((path / ood.FACTS).read_text())
    (path / ood.FACTS).write_text(damage(facts))
    with within(10), pytest.raises(CheckpointError, match=says) as error:
        ood.load(path)
    assert "ood.json" in str(error.value) and "\n" not in str(error.value)


def test_ood_files_larger_than_their_cap_are_refused_unread(evaluated, tmp_path):
    # Sparse files: 300 MB of ood.json and an ood.safetensors far larger than the model's shapes imply.
    from vitrm import ood
    path = _with_ood(evaluated, tmp_path)
    assert ood.load(path).facts["val_images"] == 20
    with open(path / ood.WEIGHTS, "r+b") as f:
        f.truncate(50 * 2**20)
    with within(10), pytest.raises(CheckpointError, match="ood.safetensors: larger than the limit"):
        ood.load(path)
    path = _with_ood(evaluated, tmp_path / "again")
    with open(path / ood.FACTS, "r+b") as f:
        f.truncate(300 * 2**20)
    with within(10), pytest.raises(CheckpointError, match="ood.json: larger than the limit of 16 MB"):
        ood.load(path)


def test_ood_json_keeps_only_the_checked_facts(evaluated, tmp_path):
    from vitrm import ood
    path = _with_ood(evaluated, tmp_path)
    facts = json.loads((path / ood.FACTS).read_text())
    (path / ood.FACTS).write_text(json.dumps({**facts, "payload": {"a": [1, 2]}, "rule": "[x](http://127.0.0.1/)"}))
    loaded = ood.load(path).facts
    assert "payload" not in loaded and loaded["rule"] == "[x](http://127.0.0.1/)"    # the text is escaped where shown


def test_a_gzip_table_is_read_whole_whatever_its_members(evaluated, tmp_path):
    # A gzip file may be several members one after another; an empty first member once hid the whole table.
    import gzip
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "members"))
    text = gzip.decompress((path / "predictions.csv.gz").read_bytes())
    header, rows = text.split(b"\n", 1)
    expected = sidefiles.read_predictions(evaluated, 3)
    for packed in (gzip.compress(b"") + gzip.compress(text),
                   gzip.compress(header + b"\n") + gzip.compress(rows[:40]) + gzip.compress(rows[40:])):
        (path / "predictions.csv.gz").write_bytes(packed)
        pd.testing.assert_frame_equal(sidefiles.read_predictions(path, 3), expected)


def test_every_member_counts_against_the_unpacked_cap(evaluated, tmp_path, monkeypatch):
    import gzip
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "bomb"))
    text = gzip.decompress((path / "predictions.csv.gz").read_bytes())
    monkeypatch.setattr(sidefiles, "MAX_CSV_BYTES", len(text) + 10)
    (path / "predictions.csv.gz").write_bytes(gzip.compress(text) + gzip.compress(text))
    with pytest.raises(CheckpointError, match="unpacks to more than the limit"):
        sidefiles.read_predictions(path, 3)


def _stage(path: Path, name: str, log: bytes = b"epoch,train_loss\n1,0.5\n") -> Path:
    (path / name).mkdir()
    (path / name / "train_log.csv").write_bytes(log)
    return path / name


def test_more_stage_folders_than_the_cap_are_refused_before_any_is_read(evaluated, tmp_path):
    from vitrm.checkpoint import MAX_STAGES
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "stages"))
    for k in range(1, MAX_STAGES + 1):
        _stage(path, f"stage{k}")
    assert len(vitrm.earlier_stages(path)) == MAX_STAGES
    _stage(path, f"stage{MAX_STAGES + 1}")
    with pytest.raises(CheckpointError, match=f"more than {MAX_STAGES} stage folders"):
        vitrm.earlier_stages(path)
    with pytest.raises(CheckpointError, match=f"more than {MAX_STAGES} stage folders"):
        vitrm.averaged_runs(path)


def test_a_stage_folder_or_side_file_that_links_out_of_the_checkpoint_is_not_followed(evaluated, tmp_path):
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "links"))
    outside = _stage(tmp_path, "elsewhere")
    (path / "stage1").symlink_to(outside)
    with pytest.raises(CheckpointError, match="stage1: a link that leads outside the checkpoint"):
        vitrm.earlier_stages(path)
    (path / "stage1").unlink()
    (path / "train_log.csv").symlink_to(outside / "train_log.csv")
    with pytest.raises(CheckpointError, match="train_log.csv: a link that leads outside the checkpoint"):
        sidefiles.read_train_log(path)
    # a link that stays inside is a file like any other
    (path / "train_log.csv").unlink()
    _stage(path, "stage1")
    (path / "train_log.csv").symlink_to(path / "stage1" / "train_log.csv")
    assert len(sidefiles.read_train_log(path, sidefiles.Budget(path))) == 1


def test_one_budget_bounds_all_the_files_of_a_checkpoint_together(evaluated, tmp_path):
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "budget"))
    log = b"epoch,train_loss\n" + b"".join(b"%d,0.5\n" % e for e in range(1, 20_001))      # 190 KB, under its cap
    for k in range(1, 6):
        _stage(path, f"stage{k}", log)
    budget = sidefiles.Budget(path, total=3 * len(log))
    for stage in vitrm.earlier_stages(path)[:3]:
        sidefiles.read_train_log(stage, budget)
    with pytest.raises(CheckpointError, match="the files of this checkpoint together pass the limit"):
        sidefiles.read_train_log(path / "stage4", budget)


def _plant_projection_and_ood(path: Path) -> None:
    """A well-formed projection.safetensors (two steps of four images) and out-of-distribution rule in ``path``."""
    import numpy as np
    from safetensors.numpy import save as save_numpy

    from vitrm import ood, projection
    arrays = {"coords": np.zeros((2, 4, 2), np.float16), "index": np.arange(4, dtype=np.int64),
              "label": np.zeros(4, np.int32), "pred": np.zeros((2, 4), np.int32)}
    (path / projection.FILE).write_bytes(save_numpy(arrays, metadata={"format": projection.FORMAT,
                                                                      "explained": "[0.5, 0.25]"}))
    generator = torch.Generator().manual_seed(0)
    ood.save(ood.fit(torch.randn(60, TINY.dim, generator=generator), torch.arange(60) % 3,
                     torch.randn(20, TINY.dim, generator=generator)), path)


def test_the_projection_and_the_ood_rule_are_charged_to_the_checkpoints_one_budget(evaluated, tmp_path):
    # projection.safetensors was once read under its own cap alone, apart from the checkpoint's budget.
    from vitrm import ood, projection
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "charged"))
    _plant_projection_and_ood(path)
    budget = sidefiles.Budget(path)
    config = vitrm.read_config(path, budget)
    assert sidefiles.read_metrics(path, 3, budget) is not None
    assert sidefiles.read_projection(path, 3, budget) is not None and ood.load(path, budget, config) is not None
    used = budget.used
    assert used == sum((path / name).stat().st_size for name in ("config.json", "metrics.json", projection.FILE,
                                                                 ood.FACTS, ood.WEIGHTS)), "every file charged"
    # The other files use up all but 100 bytes of the budget: each of these, well under its own cap, is refused.
    for read in (lambda b: sidefiles.read_projection(path, 3, b), lambda b: ood.load(path, b, config)):
        budget = sidefiles.Budget(path)
        vitrm.read_config(path, budget)
        sidefiles.read_metrics(path, 3, budget)
        budget.charge(budget.left() - 100, "the per-image table, the logs and the stage folders")
        with pytest.raises(CheckpointError, match="the files of this checkpoint together pass the limit"):
            read(budget)


@pytest.mark.parametrize("name", ["projection.safetensors", "ood.safetensors", "ood.json", "config.json"])
def test_a_projection_ood_or_config_file_that_links_out_of_the_checkpoint_is_not_followed(evaluated, tmp_path, name):
    from vitrm import ood
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "links"))
    _plant_projection_and_ood(path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (path / name).rename(outside / name)
    (path / name).symlink_to(outside / name)
    read = {"projection.safetensors": lambda b: sidefiles.read_projection(path, 3, b),
            "config.json": lambda b: vitrm.read_config(path, b)}.get(name, lambda b: ood.load(path, b, TINY))
    for budget in (None, sidefiles.Budget(path)):
        with pytest.raises(CheckpointError, match=f"{name}: a link that leads outside the checkpoint, not followed"):
            read(budget)


def _sweep_of_two(evaluated, root: Path) -> tuple[Path, Path]:
    """Two checkpoints that differ only in trained_steps (N=1, N=2), each evaluated and with a log of 3 epochs."""
    import dataclasses
    import shutil
    heavy = Path(shutil.copytree(evaluated, root / "sweep-N2"))
    light = Path(shutil.copytree(evaluated, root / "sweep-N1"))
    torch.manual_seed(1)
    vitrm.save(ViTRM(dataclasses.replace(TINY, trained_steps=1)), light)
    for path in (light, heavy):
        (path / "train_log.csv").write_text("epoch,train_loss\n1,0.9\n2,0.7\n3,0.6\n")
    return light, heavy


def test_the_sweep_and_the_cost_chart_read_each_checkpoints_files_through_its_one_budget(evaluated, tmp_path,
                                                                                      monkeypatch):
    # vitrm.sweep once read metrics.json and train_log.csv of each checkpoint under their own caps alone, charged to
    # no budget: a checkpoint whose files together passed the budget still had them read and drawn.
    light, heavy = _sweep_of_two(evaluated, tmp_path)
    used = sum((light / name).stat().st_size for name in ("config.json", "metrics.json", "train_log.csv"))
    # The heavy member's metrics.json carries 20,000 more bytes (whitespace: the same figures), past what the budget
    # leaves it once its config is read; the light member's files fit.
    (heavy / "metrics.json").write_text((heavy / "metrics.json").read_text() + " " * 20_000)
    monkeypatch.setattr(sidefiles, "MAX_CHECKPOINT_BYTES", used + 10_000)
    for points in (vitrm.find_sweeps([light, heavy])[0], vitrm.model_points([light, heavy])):
        by_n = {p.trained_steps: p for p in points}
        assert by_n[1].top1 is not None and by_n[1].epochs == 3
        assert by_n[2].top1 is None and by_n[2].epochs is None, "nothing read past the budget is drawn"
        assert by_n[1].problems == () and [what for what, _ in by_n[2].problems] == ["accuracy", "training budget"]
        for (_, problem), name in zip(by_n[2].problems, ("metrics.json", "train_log.csv")):
            assert f"{heavy / name}: the files of this checkpoint together pass the limit" in problem, problem
    budget = sidefiles.Budget(light)
    assert vitrm.read_point_files(light, budget).problems == () and budget.used == used, "every file charged once"


@pytest.mark.parametrize("name", ["metrics.json", "train_log.csv"])
def test_a_sweep_file_that_links_out_of_the_checkpoint_is_not_followed_and_the_point_says_so(evaluated, tmp_path,
                                                                                          name):
    light, heavy = _sweep_of_two(evaluated, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (heavy / name).rename(outside / name)
    (heavy / name).symlink_to(outside / name)
    point = next(p for p in vitrm.find_sweeps([light, heavy])[0] if p.path == heavy)
    assert [problem for _, problem in point.problems] == [
        f"{heavy / name}: a link that leads outside the checkpoint, not followed"]
    assert (point.top1 is None) == (name == "metrics.json") and (point.epochs is None) == (name == "train_log.csv")


def test_the_shipped_checkpoints_carry_a_tenth_of_the_budget_or_less():
    import gzip
    shipped = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "checkpoints").glob("*/config.json"))
    for path in shipped:
        files = [f for f in path.rglob("*") if f.is_file() and f.suffix in (".json", ".csv", ".gz")]
        size = sum(len(gzip.decompress(f.read_bytes())) if f.suffix == ".gz" else f.stat().st_size for f in files)
        assert size * 10 <= sidefiles.MAX_CHECKPOINT_BYTES, path.name
        assert len(vitrm.earlier_stages(path)) + len(vitrm.averaged_runs(path)) <= 16


def _wide_table(steps: int, rows: int) -> bytes:
    import gzip
    header = ["index", "path", "label", "label_name", "halt_step"] + [
        f"{kind}_{s}" for s in range(1, steps + 1) for kind in ("pred", "conf", "prob_true", "halt")]
    lines = [",".join(header)] + [",".join([str(r), f"test/a/{r}.png", "0", "a", "1"] + ["0", "0.5", "0.25", "0.5"]
                                           * steps) for r in range(rows)]
    return gzip.compress(("\n".join(lines) + "\n").encode())


def test_a_table_of_more_steps_than_the_model_runs_is_refused_from_its_header(evaluated, tmp_path):
    # The probe's 410 KB predictions.csv.gz of 4,096 steps took 12.8 s and 900 MB to parse, under a lock.
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "wide"))
    (path / "predictions.csv.gz").write_bytes(_wide_table(4096, 10))
    most = vitrm.steps.max_steps(vitrm.read_config(path))
    with within(10), pytest.raises(CheckpointError, match=f"for 1 to {most} steps, found 4096"):
        sidefiles.read_predictions(path, 3, None, None, most)
    with within(10), pytest.raises(CheckpointError, match="has 4096 steps of predictions but metrics.json has 4"):
        sidefiles.read_predictions(path, 3, 4)


def test_a_table_of_the_most_steps_there_are_is_still_read_and_checked(evaluated, tmp_path):
    path = Path(__import__("shutil").copytree(evaluated, tmp_path / "wide"))
    (path / "predictions.csv.gz").write_bytes(_wide_table(sidefiles.MAX_STEPS, 3))
    table = sidefiles.read_predictions(path, 3)
    assert table.shape == (3, 5 + 4 * sidefiles.MAX_STEPS) and table["conf_4096"].dtype == "float64"
    import gzip
    (path / "predictions.csv.gz").write_bytes(gzip.compress(gzip.decompress(_wide_table(8, 3)).replace(
        b"0.25", b"cat", 1)))
    with pytest.raises(CheckpointError, match="prob_true_1 holds a value that is not a number"):
        sidefiles.read_predictions(path, 3)
