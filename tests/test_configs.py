"""The shipped configs: one base file and small per-stage overrides that resolve to the recipes the
checkpoints were trained with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrm import CNNConfig, ViTConfig, ViTRMConfig
from vitrm.train import ConfigError, load_train_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# Every config as it resolved before the configs shared a base file (the whole TrainConfig, with
# cache_dir, which depends on the machine, left out): a stage may be rerun or resumed from either form.
RESOLVED = json.loads((Path(__file__).parent / "resolved_configs.json").read_text())


def resolved(path: Path) -> dict:
    cfg = load_train_config(str(path)).to_dict()
    cfg.pop("cache_dir")
    return json.loads(json.dumps(cfg))          # tuples as lists, as the record holds them


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_each_config_resolves_to_the_recipe_it_always_had(name):
    assert resolved(CONFIGS / name) == RESOLVED[name]


def test_the_stage_configs_say_only_what_sets_them_apart():
    stages = [CONFIGS / "vitrm-cifar10.yaml", CONFIGS / "compare.yaml", *CONFIGS.glob("vitrm-cifar10-stage*.yaml")]
    for path in stages:
        settings = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
        assert settings[0] == "base: base.yaml", path.name
        assert len(settings) <= 20, f"{path.name} repeats what base.yaml already says"


def test_the_shipped_stages_record_the_config_their_file_resolves_to(tmp_path):
    # The flagship's stage records (train_config.json) were written from these files; all that differs is
    # where each run wrote, where it started from, and what training took from the data.
    flagship = ROOT / "checkpoints" / "vitrm-cifar10"
    for stage, name in [("stage2", "vitrm-cifar10-stage2.yaml"), ("stage4", "vitrm-cifar10-stage4.yaml")]:
        record = json.loads((flagship / stage / "train_config.json").read_text())
        ours = resolved(CONFIGS / name)
        for key in ("out", "init_from", "cache_dir", "command", "command_note"):
            record.pop(key, None), ours.pop(key, None)
        record["model"].pop("class_names"), ours["model"].pop("class_names")
        # The record predates per-architecture configs, so it also names cnn_widths, which a ViTRM never read.
        assert set(record["model"]) - set(ours["model"]) == {"cnn_widths"}
        record["model"].pop("cnn_widths")
        # Fields added since the stage ran keep their defaults; compare what the record holds.
        ours["model"] = {key: ours["model"][key] for key in record["model"]}
        assert {key: ours[key] for key in record} == record, stage


def test_a_base_merges_nested_sections_and_the_file_wins(tmp_path):
    (tmp_path / "base.yaml").write_text("epochs: 3\nlr: 0.01\nmodel: {dim: 64, heads: 4}\n")
    (tmp_path / "stage.yaml").write_text("base: base.yaml\nlr: 0.002\nmodel: {heads: 2}\n")
    cfg = load_train_config(str(tmp_path / "stage.yaml"), ["epochs=5"])
    assert (cfg.epochs, cfg.lr, cfg.model.dim, cfg.model.heads) == (5, 0.002, 64, 2)


def test_a_model_section_of_another_architecture_replaces_its_bases(tmp_path):
    # A ViT reads no latent_updates: the base's ViTRM section does not leak into it.
    (tmp_path / "base.yaml").write_text("model: {dim: 64, heads: 4, latent_updates: 1, combine: add}\n")
    (tmp_path / "vit.yaml").write_text("base: base.yaml\nmodel: {arch: vit, layers: 6}\n")
    (tmp_path / "vitrm.yaml").write_text("base: base.yaml\nmodel: {arch: vitrm, layers: 6}\n")
    assert load_train_config(str(tmp_path / "vit.yaml")).model == ViTConfig(layers=6)
    assert load_train_config(str(tmp_path / "vitrm.yaml")).model == ViTRMConfig(
        dim=64, heads=4, latent_updates=1, combine="add", layers=6)


@pytest.mark.parametrize("overrides, words", [
    (["model.arch=cnn", "model.dim=64"], "model: unknown keys ['dim'] for a cnn model"),
    (["model.arch=vit", "model.latent_updates=2"], "model: unknown keys ['latent_updates'] for a vit model"),
    (["model.arch=vit", "model.trained_steps=1"], "unknown keys ['trained_steps'] for a vit model"),
    (["model={arch: vit, layers: two}"], "model.layers must be an integer"),
    (["model={arch: cnn, cnn_widths: 8}"], "cnn_widths must be a list"),
    (["model={arch: cnn, cnn_widths: []}"], "cnn_widths must be a non-empty list"),
    (["model={arch: transformer}"], "unknown architecture 'transformer'"),
])
def test_the_command_line_refuses_a_key_the_architecture_does_not_read(overrides, words):
    with pytest.raises(ConfigError) as caught:
        load_train_config(None, overrides)
    assert words in str(caught.value)


def test_the_command_line_builds_each_architectures_config():
    assert load_train_config(None, ["model={arch: cnn, cnn_widths: [8, 16]}"]).model == CNNConfig(cnn_widths=(8, 16))
    assert load_train_config(None, ["model.arch=vit"]).model == ViTConfig()
    assert load_train_config(None, ["model.dim=96"]).model == ViTRMConfig(dim=96)


@pytest.mark.parametrize("name, checkpoint", [("compare-vit.yaml", "vit-cifar10"), ("compare-cnn.yaml", "cnn-cifar10")])
def test_the_baselines_configs_resolve_to_their_records_and_the_records_repeat_them(name, checkpoint):
    record_file = ROOT / "checkpoints" / checkpoint / "train_config.json"
    record, ours = json.loads(record_file.read_text()), resolved(CONFIGS / name)
    # The runs predate compare.yaml's ema_decay: 0 (their NOTES.md: the shipped weights are the raw ones)
    # and the fields added since, which keep their defaults.
    for key in ("out", "cache_dir", "command", "command_note", "ema_decay"):
        record.pop(key, None), ours.pop(key, None)
    ours["model"] = {key: ours["model"][key] for key in record["model"]}
    assert {key: ours[key] for key in record} == record
    assert load_train_config(str(record_file)).model == load_train_config(str(CONFIGS / name)).model
    assert json.loads(record_file.read_text())["command"][4] == f"configs/{name}"


def test_a_config_that_is_its_own_base_is_one_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="its own base"):
        load_train_config(str(tmp_path / "a.yaml"))


def test_a_runs_record_is_a_config_that_repeats_it():
    record = ROOT / "checkpoints" / "vitrm-cifar10" / "stage2" / "train_config.json"
    cfg = load_train_config(str(record))
    assert cfg.init_from == json.loads(record.read_text())["init_from"] and cfg.epochs == 16
