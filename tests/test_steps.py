"""The step policy (vitrm.steps): one default, one maximum, one check of the flags, for every caller."""

import pytest

import vitrm
from vitrm import steps
from vitrm.config import INT_RANGES, parse_model_config
from vitrm.errors import UsageError

BASELINES = [vitrm.ViTConfig(), vitrm.CNNConfig()]


@pytest.mark.parametrize("n", [1, 4, 200, 1024])
def test_a_recursive_model_runs_2n_by_default_and_4n_at_most(n):
    cfg = vitrm.ViTRMConfig(trained_steps=n)
    assert (steps.default_steps(cfg), steps.max_steps(cfg)) == (2 * n, 4 * n)
    assert steps.resolve(cfg, None) == 2 * n
    assert steps.resolve(cfg, None, default=n) == n          # predict answers at the trained N
    assert [steps.is_extra(cfg, s) for s in (n, n + 1)] == [False, True]


@pytest.mark.parametrize("cfg", BASELINES, ids=lambda c: c.arch)
def test_a_baseline_has_one_step_and_refuses_more(cfg):
    assert steps.default_steps(cfg) == steps.max_steps(cfg) == steps.resolve(cfg, None) == steps.resolve(cfg, 1) == 1
    assert not steps.is_extra(cfg, 1)
    with pytest.raises(UsageError, match=f"--steps 3: a {cfg.arch} baseline is not recursive"):
        steps.resolve(cfg, 3, flag="--steps")


@pytest.mark.parametrize("asked", [0, -1, 4 * 4 + 1])
def test_a_count_outside_1_to_the_most_is_refused_naming_the_flag_and_the_most(asked):
    cfg = vitrm.ViTRMConfig(trained_steps=4)
    with pytest.raises(UsageError, match=r"--max-steps must be between 1 and 16 \(4x the trained 4\)"):
        steps.resolve(cfg, asked)
    assert steps.resolve(cfg, 16) == 16


def test_the_bound_for_files_is_the_most_of_the_largest_trained_count_a_config_may_name():
    assert INT_RANGES["trained_steps"][1] == steps.MAX_TRAINED_STEPS
    largest = parse_model_config({**vitrm.ViTRMConfig(dim=8, heads=1, layers=1, latent_updates=1).to_dict(),
                                  "trained_steps": steps.MAX_TRAINED_STEPS})
    assert steps.max_steps(largest) == steps.MAX_STEPS == 4096
    assert vitrm.sidefiles.MAX_STEPS == steps.MAX_STEPS
