"""Specification of the trained-N sweep: which checkpoints form one, and what each point reports."""

import json

import torch

import vitrm
from vitrm.sweep import EXPLANATION


def tiny(**overrides) -> vitrm.ViTRMConfig:
    return vitrm.ViTRMConfig(**{**dict(dim=32, heads=2, layers=1, latent_updates=1, trained_steps=1), **overrides})


def ship(root, name, config, top1_by_step=None):
    torch.manual_seed(0)
    path = vitrm.save(vitrm.build_model(config), root / name)
    if top1_by_step is not None:
        # Every field metrics.json must have (vitrm.sidefiles checks them), with made-up but valid values.
        steps, classes = len(top1_by_step), config.num_classes
        (path / "metrics.json").write_text(json.dumps({
            "top1_by_step": top1_by_step, "top5_by_step": top1_by_step, "ece_by_step": [0.0] * steps,
            "per_class_by_step": [[None] * classes] * steps, "confusion_by_step": [[[0] * classes] * classes] * steps,
            "num_images": 100, "data": "imagefolder:somewhere"}))
    return path


def test_checkpoints_that_differ_only_in_trained_steps_form_one_sweep_sorted_by_n(tmp_path):
    ship(tmp_path, "n4", tiny(trained_steps=4), [0.1, 0.2, 0.3, 0.4, 0.41])
    ship(tmp_path, "n1", tiny(trained_steps=1), [0.5, 0.55])
    ship(tmp_path, "n2", tiny(trained_steps=2), [0.3, 0.6])
    ship(tmp_path, "wider", tiny(dim=64, trained_steps=8), [0.9] * 8)     # another architecture: alone
    (tmp_path / "not-a-checkpoint").mkdir()
    sweeps = vitrm.find_sweeps(sorted(tmp_path.iterdir()))
    assert len(sweeps) == 1
    points = sweeps[0]
    assert [p.trained_steps for p in points] == [1, 2, 4]
    # Each model is read at its own N, not at the last step it was evaluated to.
    assert [p.top1 for p in points] == [0.5, 0.6, 0.4]
    assert len({p.parameters for p in points}) == 1


def test_compute_per_image_grows_linearly_with_n_at_equal_parameters(tmp_path):
    model = vitrm.build_model(tiny(trained_steps=4)).eval()
    flops = [vitrm.flops_per_image(model, n) for n in (1, 2, 3, 4)]
    assert flops[0] > 0
    increments = {b - a for a, b in zip(flops, flops[1:])}
    assert len(increments) == 1 and increments.pop() > 0


def test_an_unevaluated_member_is_a_point_without_accuracy_and_a_lone_model_is_no_sweep(tmp_path):
    ship(tmp_path, "n1", tiny(trained_steps=1), [0.5])
    ship(tmp_path, "n2", tiny(trained_steps=2))
    sweep = vitrm.find_sweeps([tmp_path / "n1", tmp_path / "n2"])[0]
    assert [p.top1 for p in sweep] == [0.5, None]
    assert vitrm.find_sweeps([tmp_path / "n1"]) == []


def test_a_corrupt_member_is_skipped_not_raised(tmp_path):
    for n in (1, 2, 4):
        ship(tmp_path, f"n{n}", tiny(trained_steps=n), [0.5] * n)
    (tmp_path / "n4" / "model.safetensors").write_bytes(b"not safetensors")
    sweep = vitrm.find_sweeps(sorted(tmp_path.iterdir()))[0]
    assert [p.trained_steps for p in sweep] == [1, 2]


def test_the_explanation_names_both_curves():
    assert "trained N" in EXPLANATION and "test-time steps" in EXPLANATION


def write_log(path, epochs):
    header = ("epoch,train_loss,train_ce,train_halt_bce,train_top1,val_top1,test_top1,lr,epoch_seconds,"
              "wall_seconds,images_per_second\n")
    rows = "".join(f"{e},1.0,1.0,0.5,0.5,0.5,,0.001,10.0,{10.0 * e},100.0\n" for e in range(1, epochs + 1))
    (path / "train_log.csv").write_text(header + rows)


def test_each_point_carries_its_training_budget_so_two_sweeps_of_one_architecture_are_told_apart(tmp_path):
    from app.views.trained_n import budget
    write_log(ship(tmp_path, "n1", tiny(trained_steps=1), [0.5]), 60)
    write_log(ship(tmp_path, "n8", tiny(trained_steps=8), [0.6] * 8), 60)
    sweep = vitrm.find_sweeps([tmp_path / "n1", tmp_path / "n8"])[0]
    assert [p.epochs for p in sweep] == [60, 60]
    assert budget(sweep) == "60 epochs each"
    write_log(tmp_path / "n8", 10)
    uneven = vitrm.find_sweeps([tmp_path / "n1", tmp_path / "n8"])[0]
    assert budget(uneven) == "unequal budgets: N=1 60 epochs, N=8 10 epochs"
