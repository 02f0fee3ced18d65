"""The deep-supervision loss (vitrm.train.supervision_loss), on hand-made logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitrm.train import TrainConfig, supervision_loss

LABELS = torch.tensor([0, 1, 2])
TARGETS = F.one_hot(LABELS, 3).float()


def logits_per_step() -> torch.Tensor:
    """[3 steps, 3 images, 3 classes]: step 1 gets every image wrong, step 3 every one right."""
    wrong = F.one_hot((LABELS + 1) % 3, 3).float() * 4
    right = F.one_hot(LABELS, 3).float() * 4
    return torch.stack([wrong, (wrong + right) / 2 + 0.1 * right, right]).requires_grad_()


def test_uniform_weighting_is_the_mean_of_the_steps_cross_entropies():
    logits = logits_per_step()
    cfg = TrainConfig(label_smoothing=0.0)
    loss, ce, bce = supervision_loss(logits, None, TARGETS, LABELS, cfg)
    expected = torch.stack([F.cross_entropy(logits[s], LABELS) for s in range(3)]).mean()
    assert ce.item() == pytest.approx(expected.item()) and loss.item() == pytest.approx(expected.item())
    assert bce.item() == 0.0, "a model without a halting head has no halting loss"


def test_last_weighting_gives_the_earlier_steps_no_class_gradient():
    logits = logits_per_step()
    loss, _, _ = supervision_loss(logits, None, TARGETS, LABELS, TrainConfig(step_weighting="last"))
    loss.backward()
    assert logits.grad[:2].abs().sum() == 0 and logits.grad[2].abs().sum() > 0


def test_the_halting_head_is_taught_whether_each_steps_answer_is_right():
    logits = logits_per_step().detach()
    halt = torch.zeros(3, 3, requires_grad=True)            # p = 0.5 everywhere
    cfg = TrainConfig(halt_loss_weight=0.5)
    loss, ce, bce = supervision_loss(logits, halt, TARGETS, LABELS, cfg)
    right = (logits.argmax(-1) == LABELS).float()
    assert right[0].sum() == 0 and right[2].sum() == 3
    assert bce.item() == pytest.approx(F.binary_cross_entropy_with_logits(halt, right).item())
    assert loss.item() == pytest.approx(ce.item() + 0.5 * bce.item())
    bce.backward()
    # d/dh BCE(sigmoid(h), t) = sigmoid(h) - t: pushed down where wrong, up where right.
    assert (halt.grad[0] > 0).all() and (halt.grad[2] < 0).all()


def test_soft_targets_train_the_class_and_the_hard_labels_judge_the_halting_head():
    logits = logits_per_step().detach()
    soft = 0.6 * TARGETS + 0.4 * TARGETS.roll(1, dims=1)     # MixUp-style targets
    _, ce_soft, bce_soft = supervision_loss(logits, torch.zeros(3, 3), soft, LABELS, TrainConfig(label_smoothing=0))
    _, ce_hard, bce_hard = supervision_loss(logits, torch.zeros(3, 3), TARGETS, LABELS, TrainConfig(label_smoothing=0))
    assert ce_soft.item() != pytest.approx(ce_hard.item())
    assert bce_soft.item() == pytest.approx(bce_hard.item())
