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
