"""``python -m vitrm project`` and projection.safetensors: one projection over all steps, written bounded,
read back only through vitrm.sidefiles' gate (a garbled or hostile file is refused with a clear message)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_numpy

import vitrm
from testkit.fakedata import CIFAR10_CLASSES, write_imagefolder
from vitrm import projection, sidefiles
from vitrm.__main__ import main
from vitrm.analysis import normalize
from vitrm.data import load_split

CLASSES = tuple(CIFAR10_CLASSES[:3])
TINY = dict(dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, num_classes=3, class_names=CLASSES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagefolder(tmp_path_factory.mktemp("data") / "tiny", CLASSES, train_per_class=1, test_per_class=6)


@pytest.fixture(scope="module")
def projected(tmp_path_factory, folder):
    """A tiny ViTRM, evaluated and projected by the command line; (checkpoint, the test split)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    torch.manual_seed(0)
    vitrm.save(vitrm.ViTRM(vitrm.ViTRMConfig(**TINY)), path)
    cache = tmp_path_factory.mktemp("cache")
    common = ["--checkpoint", path, "--data", f"imagefolder:{folder}", "--cache-dir", cache]
    assert main(["evaluate", *common, "--quiet"]) == 0
    assert main(["project", *common]) == 0
    return path, load_split(f"imagefolder:{folder}", "test", cache_dir=None)


def test_one_projection_is_fitted_over_every_step_so_a_point_means_the_same_at_each_step():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 50, 8, generator=g)
    features[2, :10] = features[0, :10]                # ten images whose y at step 3 returns to where it was at step 1
    coords, explained = projection.fit(features)
    assert coords.shape == (3, 50, 2)
    assert torch.allclose(coords[2, :10], coords[0, :10], atol=1e-5)
    flat = features.reshape(-1, 8)
    centred = flat - flat.mean(0)
    variances = torch.linalg.svdvals(centred).pow(2)
    assert explained == pytest.approx((variances[:2] / variances.sum()).tolist(), rel=1e-3)
    top = torch.linalg.svd(centred, full_matrices=False).Vh[:2]          # the exact components, up to sign
    exact = (centred @ top.T).reshape(3, 50, 2)
    assert torch.allclose(coords.abs(), exact.abs(), atol=1e-3)


def test_the_command_writes_every_test_image_at_every_evaluated_step_as_the_model_traces_it(projected):
    path, test = projected
    model = vitrm.load(path)
    saved = sidefiles.read_projection(path, 3)
    metrics = json.loads((path / "metrics.json").read_text())
    assert (saved.steps, saved.images) == (len(metrics["top1_by_step"]), len(test))
    trace = model.trace(normalize(test.images, model.config.mean, model.config.std), saved.steps, attention=False)
    coords, explained = projection.fit(model.head_norm(trace.y))
    assert np.allclose(saved.coords.astype(np.float32), coords.numpy(), atol=2e-2 * float(coords.abs().max()))
    assert saved.explained == pytest.approx(explained, abs=1e-5)
    assert saved.pred.tolist() == trace.logits.argmax(-1).tolist()
    assert saved.label.tolist() == test.labels.tolist() and saved.index.tolist() == list(range(len(test)))
    assert projection.matches(saved, vitrm.read_predictions(path)) is None
    assert saved.right(2).tolist() == (trace.logits[1].argmax(-1) == test.labels).tolist()
    assert saved.changed(2).tolist() == (trace.logits[1].argmax(-1) != trace.logits[0].argmax(-1)).tolist()
    assert not saved.coords.flags.writeable, "shared by every session: read-only"
    raw = (path / projection.FILE).read_bytes()
    assert b"pickle" not in raw and len(raw) < 20_000


def test_the_command_is_bounded_and_says_what_it_refuses(projected, folder, capsys):
    path, _ = projected
    common = ["--checkpoint", path, "--data", f"imagefolder:{folder}"]
    for extra, said in ((["--limit", "10001"], "--limit must be between 1 and 10000"),
                        (["--steps", "65"], "--steps must be")):
        assert main(["project", *common, *extra]) == 2
        assert said in capsys.readouterr().err
    baseline = path.parent / "vit"
    vitrm.save(vitrm.ViT(vitrm.vit_config_for(vitrm.ViTRMConfig(**TINY))), baseline)
    assert main(["project", "--checkpoint", baseline, "--data", f"imagefolder:{folder}"]) == 2
    assert "baseline has one step" in capsys.readouterr().err


def test_a_projection_of_other_data_than_the_per_image_table_is_told_apart(projected):
    path, _ = projected
    saved = sidefiles.read_projection(path, 3)
    table = vitrm.read_predictions(path).copy()
    table.loc[0, "label"] = (int(table.loc[0, "label"]) + 1) % 3
    assert "different data" in projection.matches(saved, table)
    assert "absent from" in projection.matches(saved, table.iloc[1:])


# --------------------------------------------------------------------------- hostile files

def arrays(steps=2, images=4):
    return {"coords": np.zeros((steps, images, 2), np.float16), "index": np.arange(images, dtype=np.int64),
            "label": np.zeros(images, np.int32), "pred": np.zeros((steps, images), np.int32)}


META = {"format": projection.FORMAT, "explained": "[0.5, 0.25]"}


def write(tmp_path, data: bytes):
    (tmp_path / projection.FILE).write_bytes(data)
    return tmp_path


def test_a_well_formed_file_is_read(tmp_path):
    saved = sidefiles.read_projection(write(tmp_path, save_numpy(arrays(), metadata=META)), 3)
    assert saved.explained == (0.5, 0.25) and saved.coords.shape == (2, 4, 2)
    assert sidefiles.read_projection(tmp_path / "absent", 3) is None


def changed(**parts):
    return arrays() | parts


@pytest.mark.parametrize("data, said", [
    (b"", "not a safetensors file"),
    (b"\xff" * 64, "not a safetensors file"),
    (struct.pack("<Q", 10) + b"{not json}", "not valid JSON"),
    (struct.pack("<Q", 2**40) + b"{}", "a header of"),
    (save_numpy(arrays(), metadata=META)[:-5], "not a readable safetensors file"),
    (save_numpy(arrays(), metadata={"format": "something else", "explained": "[0.5, 0.25]"}), "format is"),
    (save_numpy(arrays(), metadata={"format": projection.FORMAT}), "explained must be"),
    (save_numpy(arrays(), metadata={"format": projection.FORMAT, "explained": "[0.5, 7]"}), "outside"),
    (save_numpy(changed(extra=np.zeros(1, np.float32)), metadata=META), "expected exactly"),
    (save_numpy(changed(coords=np.zeros((2, 4, 2), np.float32)), metadata=META), "coords is float32"),
    (save_numpy(changed(coords=np.full((2, 4, 2), np.nan, np.float16)), metadata=META), "finite"),
    (save_numpy(changed(coords=np.full((2, 4, 2), np.inf, np.float16)), metadata=META), "finite"),
    (save_numpy(changed(coords=np.zeros((2, 4, 3), np.float16)), metadata=META), "shape"),
    (save_numpy(changed(pred=np.zeros((3, 4), np.int32)), metadata=META), "do not fit"),
    (save_numpy(changed(label=np.full(4, 3, np.int32)), metadata=META), "label holds a class outside 0..2"),
    (save_numpy(changed(pred=np.full((2, 4), -1, np.int32)), metadata=META), "pred holds a class outside"),
    (save_numpy(changed(index=np.zeros(4, np.int64)), metadata=META), "distinct"),
    (save_numpy(arrays(steps=projection.MAX_STEPS + 1, images=1), metadata=META), "steps"),
])
def test_a_garbled_or_hostile_file_is_refused_naming_the_file_and_what_is_wrong(tmp_path, data, said):
    with pytest.raises(vitrm.CheckpointError, match=said) as refused:
        sidefiles.read_projection(write(tmp_path, data), 3)
    assert projection.FILE in str(refused.value)


def test_a_file_over_the_size_cap_is_refused_without_being_read_whole(tmp_path):
    with open(tmp_path / projection.FILE, "wb") as f:
        f.truncate(sidefiles.MAX_PROJECTION_BYTES + 1)        # sparse: large on paper, nothing on disk
    with pytest.raises(vitrm.CheckpointError, match="larger than the limit"):
        sidefiles.read_projection(tmp_path, 3)


# --------------------------------------------------------------------------- the shipped maps

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.parametrize("name", ["vitrm-cifar10", "vitrm-cifar10-refine"])
def test_the_shipped_maps_pass_the_gate_and_agree_with_their_checkpoints_evaluation(name):
    path = SHIPPED / name
    saved = sidefiles.read_projection(path, vitrm.read_config(path).num_classes)
    assert saved is not None, f"{name} ships without {projection.FILE}: python -m vitrm project"
    metrics = json.loads((path / "metrics.json").read_text())
    assert (saved.images, saved.steps) == (metrics["num_images"], len(metrics["top1_by_step"]))
    assert [float(saved.right(s).mean()) for s in range(1, saved.steps + 1)] == pytest.approx(
        metrics["top1_by_step"], abs=1e-9), "the answers on the map are the evaluated ones"
    assert projection.matches(saved, vitrm.read_predictions(path)) is None
    assert (path / projection.FILE).stat().st_size < 4 * 2**20


def test_nearest_centre_measures_how_far_the_classes_have_gathered_on_the_map():
    label = np.array([0, 0, 0, 1, 1, 1], np.int32)
    mixed = [[0, 0], [5, 0], [0, 1], [5, 1], [0, 2], [5, 2]]          # step 1: no class on a side of its own
    apart = [[0, 0], [0, 1], [0, 2], [5, 0], [5, 1], [5, 2]]          # step 2: each class a column
    p = projection.Projection(coords=np.array([mixed, apart], np.float16), index=np.arange(6), label=label,
                              pred=np.array([[0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1]], np.int32), explained=(0.5, 0.5))
    assert projection.nearest_centre(p, 2) == 1.0
    assert projection.nearest_centre(p, 1) == pytest.approx(4 / 6)
    assert "answer changed between step 1 and N for 33.3%" in projection.summary(p, 2)      # images 1 and 4
