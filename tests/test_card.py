"""Model cards are written from the files beside the weights, never typed by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

import vitrm
from vitrm import ViTRM, ViTRMConfig
from vitrm.card import render_card
from vitrm.train import LOG_FIELDS, TrainConfig

TINY = ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1)


def write_stage(folder: Path, ran: int, wall_per_epoch: float, **settings) -> None:
    """A stage's train_config.json (scheduled for ``ran`` epochs unless settings say otherwise) and log."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(model=TINY, data="imagefolder:../shared/datasets/cifar10-jpeg", epochs=ran).to_dict()
    cfg.update(settings)
    (folder / "train_config.json").write_text(json.dumps(cfg))
    with open(folder / "train_log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows({**dict.fromkeys(LOG_FIELDS, 0.5), "epoch": e, "wall_seconds": e * wall_per_epoch}
                         for e in range(1, ran + 1))


def command(*args: str) -> list[str]:
    return ["python", "-m", "vitrm", *args]


def test_a_card_for_a_run_in_three_stages_sums_them_and_prints_each_recorded_command(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "vitrm-cifar10"
    vitrm.save(ViTRM(TINY), run)
    write_stage(run / "stage1", 3, 100.0, lr=0.002, command=command("train", "configs/a.yaml", "--out", "runs/one"))
    write_stage(run / "stage2", 2, 100.0, lr=0.001, epochs=5,          # cut short after 2 of 5
                command=command("train", "configs/b.yaml", "--set", "init_from=runs/one", "--stop-after", "2"))
    write_stage(run, 4, 450.0, lr=0.001, detach_between_steps=False, step_weighting="linear",
                augment={**TrainConfig().augment.__dict__, "mixup_alpha": 0.2, "cutmix_alpha": 1.0},
                command=command("train", "my config.yaml", "--set", "init_from=runs/two"))
    (run / "NOTES.md").write_text("Written by hand.")

    card = render_card(run, "a test machine")

    assert "9 in 3 stages" in card
    assert "stage 1, 3 epochs (lr 0.002, n=1, RandAugment 2 op(s))" in card
    assert "stage 3, 4 epochs (lr 0.001, n=1, no detach between steps, linear step weights" in card
    assert "MixUp alpha 0.2 or CutMix alpha 1.0 on every batch)" in card
    assert "wall time 0.64 h" in card                     # 300 + 200 + 1800 s
    block = card.split("```\n")[1].splitlines()
    assert block[:3] == ["python -m vitrm train configs/a.yaml --out runs/one",
                         "python -m vitrm train configs/b.yaml --set init_from=runs/one --stop-after 2",
                         "python -m vitrm train 'my config.yaml' --set init_from=runs/two"]   # as typed, quoted
    assert block[3].startswith("python -m vitrm evaluate --checkpoint checkpoints/vitrm-cifar10")
    assert "stage 2, 2 of 5 scheduled epochs" in card
    assert card.rstrip().endswith("Written by hand.")


def test_a_run_without_a_recorded_command_says_so_rather_than_guessing(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "vitrm-cifar10"
    vitrm.save(ViTRM(TINY), run)
    write_stage(run, 2, 60.0)
    card = render_card(run, "a test machine")
    assert "# vitrm-cifar10: no command recorded" in card
    assert "python -m vitrm train" not in card


def test_an_unfinished_single_stage_run_says_how_to_continue(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "vitrm-cifar10"
    vitrm.save(ViTRM(TINY), run)
    write_stage(run, 2, 60.0, command=command("train", "configs/x.yaml"))
    (run / "train_config.json").write_text(json.dumps({**json.loads((run / "train_config.json").read_text()),
                                                        "epochs": 5}))
    card = render_card(run, "a test machine")
    assert "2 of 5 scheduled" in card and "--resume" in card
    assert "Not evaluated yet" in card


def test_a_card_for_averaged_runs_names_every_run_and_the_average_command(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "vitrm-cifar10"
    vitrm.save(ViTRM(TINY), run)
    write_stage(run / "stage1", 3, 100.0, lr=0.002, command=command("train", "s1.yaml"))
    write_stage(run, 2, 100.0, lr=0.0003, command=command("train", "s2.yaml"))
    write_stage(run / "stage2b", 2, 150.0, lr=0.0003, augment={**TrainConfig().augment.__dict__, "randaugment_ops": 1},
                command=command("train", "s2b.yaml"))
    (run / "averaged_from.json").write_text(json.dumps({
        "sources": ["runs/x", "runs/y"], "command": command("average", "runs/x", "runs/y", "--out", "here")}))

    card = render_card(run, "a test machine")

    assert "7 in 2 stages" in card
    assert "stage 2b, side by side from the same weights, 2 epochs (lr 0.0003, n=1, RandAugment 1 op(s))" in card
    assert "The shipped weights are the uniform average of the 2 runs of stage 2" in card
    assert "wall time 0.22 h summed over the runs" in card          # 300 + 200 + 300 s
    assert card.split("```\n")[1].splitlines()[:4] == [
        "python -m vitrm train s1.yaml", "python -m vitrm train s2.yaml", "python -m vitrm train s2b.yaml",
        "python -m vitrm average runs/x runs/y --out here"]


def test_the_shipped_cards_are_what_the_card_command_writes():
    # Every shipped model card is regenerated from its files, byte for byte (hardware as recorded on it).
    import re
    for readme in sorted((Path(__file__).resolve().parents[1] / "checkpoints").glob("*/README.md")):
        text = readme.read_text()
        hardware = re.search(r"- Hardware: (.*); wall time", text).group(1)
        assert render_card(readme.parent, hardware) == text, readme.parent.name


def test_a_card_reads_every_file_through_the_side_file_gate(tmp_path):
    # The card's notes, the average's record and the stages' records are a stranger's files like the others:
    # bounded, checked, and never read through a link out of the checkpoint.
    import pytest
    torch.manual_seed(0)
    run = tmp_path / "run"
    vitrm.save(ViTRM(TINY), run)
    write_stage(run, 2, 10.0)
    secret = tmp_path / "secret.txt"
    secret.write_text("not the card's to show")
    (run / "NOTES.md").symlink_to(secret)
    with pytest.raises(vitrm.CheckpointError, match="NOTES.md: a link that leads outside the checkpoint"):
        render_card(run, "a test machine")
    (run / "NOTES.md").unlink()
    (run / "averaged_from.json").write_text(json.dumps({"sources": "runs/a", "command": [1, 2]}))
    with pytest.raises(vitrm.CheckpointError, match="averaged_from.json: expected sources and command"):
        render_card(run, "a test machine")
    (run / "averaged_from.json").unlink()
    write_stage(run / "stage1", 2, 10.0, epochs="two")
    with pytest.raises(vitrm.CheckpointError, match="stage1/train_config.json: epochs must be an integer"):
        render_card(run, "a test machine")
