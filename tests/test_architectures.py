"""The architecture table (vitrm.config.ARCHITECTURES): building, validation, naming, the default arch and
"is this model recursive" all read it."""

import pytest
import torch

import vitrm
from vitrm.config import ARCHITECTURES, DEFAULT_ARCH, ConfigError, config_class, parse_model_config

TINY = {"vitrm": dict(dim=8, heads=1, layers=1, latent_updates=1, trained_steps=2), "vit": dict(dim=8, heads=1),
        "cnn": dict(cnn_widths=(4,))}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_row_builds_validates_and_names_its_architecture(name):
    row = ARCHITECTURES[name]
    cfg = row.config_class()(**TINY[name])
    assert cfg.arch == name and config_class(name) is type(cfg)
    assert parse_model_config(cfg.to_dict()) == cfg
    model = vitrm.build_model(cfg)
    assert type(model) is row.model_class()
    assert vitrm.ARCH_NAMES[name] == row.title
    assert cfg.recursive is row.recursive


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_recursive_says_whether_the_model_answers_after_any_number_of_steps(name):
    cfg = ARCHITECTURES[name].config_class()(**TINY[name])
    model = vitrm.build_model(cfg).eval()
    images = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    if cfg.recursive:
        assert model.trace(images, 3, attention=False).steps == 3
    else:
        assert model.trace(images, None, attention=False).steps == 1
        with pytest.raises(ValueError, match="not recursive"):
            model.trace(images, 3, attention=False)


def test_only_the_vitrm_is_recursive_and_a_config_without_arch_is_the_defaults():
    assert [n for n, a in ARCHITECTURES.items() if a.recursive] == ["vitrm"]
    assert DEFAULT_ARCH == "vitrm"
    raw = vitrm.ViTRMConfig(**TINY["vitrm"]).to_dict()
    del raw["arch"]
    assert type(parse_model_config(raw)) is config_class(DEFAULT_ARCH)


def test_an_unknown_architecture_is_refused_with_the_tables_names():
    with pytest.raises(ConfigError, match=r"unknown architecture 'resnet'; expected one of \['cnn', 'vit', 'vitrm'\]"):
        parse_model_config({"arch": "resnet"})
    with pytest.raises(ConfigError, match="arch must be a string"):
        config_class(3)
