"""vitrm.ood: the "probably none of the classes" rule, its threshold from validation data, and its files."""

from __future__ import annotations

import json

import pytest
import torch

import vitrm
from vitrm import ViTRM, ViTRMConfig, ood
from vitrm.checkpoint import CheckpointError

TINY = ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1)


def clusters(n: int, seed: int, classes: int = 3, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.eye(classes, dim) * 10
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def test_the_threshold_flags_the_chosen_share_of_validation_images_and_far_points_are_flagged():
    train, labels = clusters(3000, seed=0)
    val, _ = clusters(2000, seed=1)
    rule = ood.fit(train, labels, val, false_alarm=0.05)
    assert rule.facts["val_false_alarm"] == pytest.approx(0.05, abs=0.002)
    assert rule.facts["val_images"] == 2000 and rule.facts["fit_images"] == 3000
    held_out, _ = clusters(4000, seed=2)
    assert rule.unusual(held_out).double().mean().item() == pytest.approx(0.05, abs=0.02), \
        "fresh in-distribution points are flagged at about the validation rate"
    far = torch.full((5, 8), 30.0)
    assert rule.unusual(far).all()
    assert not rule.unusual(torch.eye(3, 8) * 10).any(), "the class centres themselves are never flagged"


def test_the_rule_is_saved_beside_the_weights_and_loaded_back(tmp_path):
    vitrm.save(ViTRM(TINY), tmp_path / "m")
    train, labels = clusters(500, seed=0, classes=TINY.num_classes, dim=TINY.dim)
    val, _ = clusters(300, seed=1, classes=TINY.num_classes, dim=TINY.dim)
    rule = ood.fit(train, labels, val)
    assert ood.load(tmp_path / "m") is None, "no rule: no warning, no error"
    ood.save(rule, tmp_path / "m")
    back = ood.load(tmp_path / "m")
    assert back.threshold == pytest.approx(rule.threshold)
    assert torch.allclose(back.score(val[:20]), rule.score(val[:20]).float().double(), rtol=1e-4)


@pytest.mark.parametrize("damage", ["shape", "threshold", "json"])
def test_damaged_rule_files_raise_a_checkpoint_error_naming_them(tmp_path, damage):
    vitrm.save(ViTRM(TINY), tmp_path / "m")
    train, labels = clusters(500, seed=0, classes=TINY.num_classes, dim=TINY.dim)
    rule = ood.fit(train, labels, train)
    if damage == "shape":
        rule.means = rule.means[:, :5]
    ood.save(rule, tmp_path / "m")
    facts = tmp_path / "m" / ood.FACTS
    if damage == "threshold":
        facts.write_text(json.dumps(rule.facts | {"threshold": float("nan")}))
    if damage == "json":
        facts.write_text("{not json")
    with pytest.raises(CheckpointError, match="ood"):
        ood.load(tmp_path / "m")


def test_features_are_the_latent_state_or_the_answer_token_at_the_trained_step():
    torch.manual_seed(0)
    model = ViTRM(TINY).eval()
    images = torch.randn(3, 3, 32, 32)
    trace = model.trace(images, steps=4 * TINY.trained_steps, attention=False)
    expected = {"z": trace.z[TINY.trained_steps - 1].mean(1), "y": model.head_norm(trace.y[TINY.trained_steps - 1])}
    for feature, want in expected.items():
        assert torch.allclose(ood.trace_features(model, trace, feature), want)
        assert torch.allclose(ood.features(model, images, feature, batch=2), want, atol=1e-5)
    with pytest.raises(ValueError, match="unknown feature"):
        ood.trace_features(model, trace, "x")


def test_a_rule_records_its_feature_and_one_without_a_record_was_fitted_on_y(tmp_path):
    vitrm.save(ViTRM(TINY), tmp_path / "m")
    train, labels = clusters(500, seed=0, classes=TINY.num_classes, dim=TINY.dim)
    rule = ood.fit(train, labels, train, feature="z")
    assert (rule.feature, rule.facts["rule"]) == ("z", ood.rule_text("z"))
    del rule.facts["feature"]
    ood.save(rule, tmp_path / "m")
    assert ood.load(tmp_path / "m").feature == "y"
    ood.save(ood.fit(train, labels, train), tmp_path / "m")
    facts = tmp_path / "m" / ood.FACTS
    facts.write_text(json.dumps(json.loads(facts.read_text()) | {"feature": "pixels"}))
    with pytest.raises(CheckpointError, match="ood"):
        ood.load(tmp_path / "m")


def test_photos_known_to_be_outside_the_classes_are_counted_and_the_missed_ones_named(tmp_path):
    from PIL import Image
    torch.manual_seed(0)
    model = ViTRM(TINY).eval()
    folder = tmp_path / "outside"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((torch.rand(40, 50, 3) * 255).byte().numpy()).save(folder / f"noise{i}.png")
    (folder / "README.txt").write_text("where these came from")            # not an image: skipped
    points = torch.randn(200, TINY.dim, generator=torch.Generator().manual_seed(0))
    rule = ood.fit(points, torch.arange(200) % TINY.num_classes, points)
    rule.threshold = float(rule.score(ood.features(model, model.preprocess(
        Image.open(folder / "noise1.png")))))       # noise1 sits exactly on the threshold: not flagged
    facts = ood.outside_facts(rule, model, folder)
    assert facts["outside_images"] == 3 and "noise1.png" in facts["outside_missed"]
    assert facts["outside_flagged"] == pytest.approx((3 - len(facts["outside_missed"])) / 3)


@pytest.mark.parametrize("recorded, held_out", [({"val_size": 6}, 6), ({"val_size": 9}, 9), (None, None)])
def test_the_threshold_is_set_on_the_validation_split_the_checkpoint_was_trained_with(tmp_path, recorded, held_out):
    from testkit.fakedata import write_imagefolder
    from vitrm.data import load_split, train_val_split
    from vitrm.train import TrainConfig

    data = write_imagefolder(tmp_path / "data", train_per_class=10)
    path = tmp_path / "ckpt"
    vitrm.save(ViTRM(TINY), path)
    if recorded is not None:
        (path / "train_config.json").write_text(json.dumps(recorded))
    if held_out is None:      # no record: what vitrm.train holds out by default, here more than the 30 images
        with pytest.raises(Exception, match=str(TrainConfig.val_size)):
            ood.fit_splits(path, f"imagefolder:{data}", 32, 100)
        return
    train, val = ood.fit_splits(path, f"imagefolder:{data}", 32, 100)
    _, expected = train_val_split(load_split(f"imagefolder:{data}", "train", image_size=32), held_out)
    assert len(val) == held_out and torch.equal(val.images, expected.images)
    assert len(train) == 30 - held_out


def test_a_checkpoint_trained_without_a_validation_split_has_no_threshold_to_fit(tmp_path):
    from testkit.fakedata import write_imagefolder

    data = write_imagefolder(tmp_path / "data", train_per_class=10)
    path = tmp_path / "ckpt"
    vitrm.save(ViTRM(TINY), path)
    (path / "train_config.json").write_text(json.dumps({"val_size": 0}))
    with pytest.raises(CheckpointError, match="no validation split"):
        ood.fit_splits(path, f"imagefolder:{data}", 32, 100)
