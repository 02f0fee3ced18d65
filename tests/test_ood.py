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


def test_features_are_the_answer_token_at_the_trained_step_as_the_head_reads_it():
    torch.manual_seed(0)
    model = ViTRM(TINY).eval()
    images = torch.randn(3, 3, 32, 32)
    trace = model.trace(images, steps=4 * TINY.trained_steps, attention=False)
    expected = model.head_norm(trace.y[TINY.trained_steps - 1])
    assert torch.allclose(ood.trace_features(model, trace), expected)
    assert torch.allclose(ood.features(model, images, batch=2), expected, atol=1e-5)
