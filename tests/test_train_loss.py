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


def test_distillation_pulls_the_supervised_step_toward_the_teachers_answer_and_no_other_step():
    logits = logits_per_step()
    teacher = F.one_hot((LABELS + 2) % 3, 3).float() * 5    # a teacher that disagrees with the labels
    cfg = TrainConfig(step_weighting="last", label_smoothing=0.0, distill_weight=1.0, distill_temperature=1.0)
    loss, _, _ = supervision_loss(logits, None, TARGETS, LABELS, cfg, teacher)
    loss.backward()
    assert logits.grad[:2].abs().sum() == 0, "with 'last' the teacher teaches only the last step"
    # d/dz KL(t || softmax(z)) = softmax(z) - t: the teacher's class is pushed up, whatever the label says.
    taught = (LABELS + 2) % 3
    assert (logits.grad[2].gather(1, taught[:, None]) < 0).all()
    assert (logits.grad[2].gather(1, LABELS[:, None]) > 0).all()


def test_distillation_weight_mixes_the_labels_and_the_teacher():
    logits = logits_per_step().detach()
    teacher = torch.randn(3, 3)
    only_labels = TrainConfig(label_smoothing=0.0, distill_weight=0.0, distill_temperature=2.0)
    only_teacher = TrainConfig(label_smoothing=0.0, distill_weight=1.0, distill_temperature=2.0)
    half = TrainConfig(label_smoothing=0.0, distill_weight=0.5, distill_temperature=2.0)
    a = supervision_loss(logits, None, TARGETS, LABELS, only_labels, teacher)[0]
    b = supervision_loss(logits, None, TARGETS, LABELS, only_teacher, teacher)[0]
    c = supervision_loss(logits, None, TARGETS, LABELS, half, teacher)[0]
    assert a.item() == pytest.approx(supervision_loss(logits, None, TARGETS, LABELS, only_labels)[0].item())
    assert c.item() == pytest.approx((a.item() + b.item()) / 2)
    assert b.item() > 0


def test_a_student_that_matches_its_teacher_has_no_distillation_loss():
    from vitrm.train import distillation_loss
    z = torch.randn(4, 10)
    assert distillation_loss(z, z, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(z, z + torch.randn(4, 10), 3.0).item() > 0


def test_the_teacher_answers_after_its_distill_steps_on_images_in_its_own_normalization():
    from types import SimpleNamespace

    from vitrm import ViTRM, ViTRMConfig
    from vitrm.train import teacher_answer
    torch.manual_seed(0)
    teacher = ViTRM(ViTRMConfig(dim=16, heads=2, layers=1, trained_steps=3,
                                mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))).eval()
    images = torch.randn(4, 3, 32, 32)           # standardized with the student's statistics below
    student = ViTRMConfig(dim=16, heads=2, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4))
    run = SimpleNamespace(teacher=teacher, device=torch.device("cpu"),
                          cfg=TrainConfig(model=student, distill_steps=1))
    pixels = images * torch.tensor(student.std).view(1, 3, 1, 1) + torch.tensor(student.mean).view(1, 3, 1, 1)
    theirs = (pixels - 0.5) / 0.25
    with torch.no_grad():
        assert torch.allclose(teacher_answer(run, images), teacher(theirs, 1), atol=1e-5)
        run.cfg = TrainConfig(model=student, distill_steps=0)
        assert torch.allclose(teacher_answer(run, images), teacher(theirs, 3), atol=1e-5)
        assert not torch.allclose(teacher(theirs, 1), teacher(theirs, 3), atol=1e-5)
