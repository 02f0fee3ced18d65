"""Every checkpoint we ship reproduces, on a fixed 1,000-image subset of the test set, the
per-step accuracy it recorded there at evaluation time (within 1 point)."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

import vitrm
from vitrm.analysis import normalize
from vitrm.data import load_split
from vitrm.train import read_log

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = sorted(p for p in CHECKPOINTS.glob("*") if (p / "metrics.json").is_file())


def test_every_shipped_checkpoint_has_the_files_a_user_needs():
    for path in SHIPPED:
        for name in ("model.safetensors", "config.json", "metrics.json", "predictions.csv.gz",
                     "train_log.csv", "README.md"):
            assert (path / name).is_file(), f"{path.name} lacks {name}"
        assert not (path / "predictions.csv").exists(), "the per-image table is shipped compressed, once"


def test_checkpoints_stay_small():
    total = sum(f.stat().st_size for f in CHECKPOINTS.rglob("*") if f.is_file())
    assert total < 50 * 2**20


@pytest.fixture(scope="module")
def test_subset(tmp_path_factory):
    root = CHECKPOINTS.parents[1] / "shared" / "datasets" / "cifar10-jpeg"
    if not root.is_dir():
        pytest.skip(f"{root} is absent; the shared CIFAR-10 JPEG copy is needed")
    split = load_split(f"imagefolder:{root}", "test", cache_dir=tmp_path_factory.mktemp("cache"))
    return split.subset(torch.arange(0, len(split), 10))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_per_step_accuracy_on_the_fixed_subset_matches_the_record(path, test_subset):
    model = vitrm.load(path)
    recorded = vitrm.read_metrics(path)["subset"]
    assert recorded["num_images"] == len(test_subset) == 1000
    steps = len(recorded["top1_by_step"])
    correct = torch.zeros(steps)
    for i in range(0, len(test_subset), 250):
        images = normalize(test_subset.images[i:i + 250], model.config.mean, model.config.std)
        trace = model.trace(images, steps if model.config.recursive else None, attention=False)
        correct += (trace.logits.argmax(-1) == test_subset.labels[i:i + 250]).sum(-1).float()
    measured = (correct / len(test_subset)).tolist()
    for step, (got, want) in enumerate(zip(measured, recorded["top1_by_step"]), start=1):
        assert abs(got - want) <= 0.01, f"{path.name} step {step}: measured {got:.4f}, recorded {want:.4f}"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_the_compressed_per_image_table_agrees_with_the_recorded_metrics(path):
    table, metrics = vitrm.read_predictions(path), vitrm.read_metrics(path)
    assert len(table) == metrics["num_images"]
    for step, top1 in enumerate(metrics["top1_by_step"], start=1):
        assert (table[f"pred_{step}"] == table["label"]).mean() == pytest.approx(top1, abs=1e-12), step


def shipped_runs() -> list[Path]:
    """Every run directory shipped: each checkpoint, its earlier stages and averaged runs (those with a
    train_config.json under checkpoints/), and any run committed under runs/ (the rest of runs/ is local)."""
    root = CHECKPOINTS.parent
    found = {p.parent for p in CHECKPOINTS.rglob("train_config.json")}
    listed = subprocess.run(["git", "ls-files", "runs"], cwd=root, capture_output=True, text=True)
    if listed.returncode == 0:
        found |= {(root / f).parent for f in listed.stdout.split() if f.endswith("/train_config.json")}
    return sorted(found)


def test_resume_state_is_shipped_only_for_an_unfinished_run():
    # A finished run's optimizer moments are dead weight in the repository; an unfinished one may need them.
    runs = shipped_runs()
    assert len(runs) >= len(SHIPPED), "every shipped checkpoint records its run"
    for run in runs:
        scheduled = json.loads((run / "train_config.json").read_text())["epochs"]
        logged = len(read_log(run))
        assert logged <= scheduled, f"{run}: {logged} epochs logged of {scheduled}"
        if logged == scheduled:
            assert not list(run.glob("train_state.*")), f"{run} finished: drop its resume state"
