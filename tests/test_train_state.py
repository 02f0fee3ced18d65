"""The resume state on disk (vitrm.train): shards small enough to commit, written so a kill loses nothing."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import vitrm.train as train
from vitrm.config import ConfigError
from vitrm.train import read_train_state

SMALL_SHARD = 4096     # bytes: a toy model needs several shards


def toy_run():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Linear(32, 8))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 16)).sum().backward()
    optimizer.step()   # AdamW's moments exist only after a step
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    return model, optimizer, scheduler


def save(out, model, optimizer, scheduler, epoch, monkeypatch, limit=SMALL_SHARD):
    monkeypatch.setattr(train, "STATE_SHARD_BYTES", limit)
    monkeypatch.setattr(train.ckpt, "save", lambda *a, **k: None)     # the model file is not under test here
    train._save_state(out, model, None, optimizer, scheduler, epoch, wall=1.0, log_rows=[])


def test_the_state_is_split_into_shards_no_larger_than_the_limit_and_reads_back_whole(tmp_path, monkeypatch):
    model, optimizer, scheduler = toy_run()
    save(tmp_path, model, optimizer, scheduler, 3, monkeypatch)
    shards = sorted(tmp_path.glob("train_state.e0003.*.safetensors"))
    assert len(shards) > 2
    # Each shard's tensors fit the limit; the file adds only a small JSON header.
    assert all(p.stat().st_size < SMALL_SHARD + 2048 for p in shards)
    assert json.loads((tmp_path / "train_state.json").read_text())["tensor_files"] == [p.name for p in shards]

    state = read_train_state(tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(state[f"model.{key}"], value)
    assert torch.equal(state["opt.0.exp_avg_sq"], optimizer.state_dict()["state"][0]["exp_avg_sq"])


def test_a_new_epoch_replaces_the_old_shards_only_after_naming_its_own(tmp_path, monkeypatch):
    model, optimizer, scheduler = toy_run()
    save(tmp_path, model, optimizer, scheduler, 1, monkeypatch)
    save(tmp_path, model, optimizer, scheduler, 2, monkeypatch)
    assert not list(tmp_path.glob("train_state.e0001.*")), "the previous epoch's shards are dropped"
    assert list(tmp_path.glob("train_state.e0002.*"))


def test_a_kill_between_shards_and_the_index_leaves_the_previous_epoch_readable(tmp_path, monkeypatch):
    model, optimizer, scheduler = toy_run()
    save(tmp_path, model, optimizer, scheduler, 1, monkeypatch)
    before = read_train_state(tmp_path)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before train_state.json was replaced")
    monkeypatch.setattr(train.ckpt, "atomic_write_json", killed)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path, model, optimizer, scheduler, 2, monkeypatch)

    after = read_train_state(tmp_path)
    assert json.loads((tmp_path / "train_state.json").read_text())["epoch"] == 1
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_a_run_saved_before_sharding_still_resumes_from_its_single_file(tmp_path, monkeypatch):
    model, optimizer, scheduler = toy_run()
    legacy = {f"model.{k}": v for k, v in model.state_dict().items()}
    save_file(legacy, tmp_path / "train_state.safetensors")
    (tmp_path / "train_state.json").write_text(json.dumps({"epoch": 5}))
    assert read_train_state(tmp_path).keys() == legacy.keys()

    save(tmp_path, model, optimizer, scheduler, 6, monkeypatch, limit=2**20)
    assert not (tmp_path / "train_state.safetensors").exists(), "the sharded state replaces the single file"
    assert [p.name for p in tmp_path.glob("train_state.e*")] == ["train_state.e0006.0.safetensors"]


def test_an_index_that_names_a_file_outside_the_run_is_refused(tmp_path):
    (tmp_path / "train_state.json").write_text(json.dumps({"epoch": 1, "tensor_files": ["../elsewhere.safetensors"]}))
    with pytest.raises(ConfigError, match="not a file name"):
        read_train_state(tmp_path)
