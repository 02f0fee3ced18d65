"""vitrm.attribution: captum methods on "the model run to exactly step t"."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from vitrm import ViTRM, ViTRMConfig
from vitrm.attribution import METHODS, StepModel, attribute, attribute_steps

SIZE = 32
TOP_LEFT = (slice(0, 8), slice(0, 8))
BOTTOM_RIGHT = (slice(24, 32), slice(24, 32))
# Occlusion slides a 4x4 window by 2 pixels, so a window that overlaps a region by one pixel
# also credits the three pixels beside it: keep that margin when checking "nothing outside".
OCCLUSION_MARGIN = 3


class RegionModel(nn.Module):
    """Class 0 reads the top-left 8x8 pixels, class 1 the bottom-right; nothing else matters.

    With ``swap_after=s``, the regions swap once more than ``s`` steps are run, so a wrong
    step count shows up as the wrong region. ``train_region`` (if set) replaces class 0's
    region in training mode, so attributing in the wrong mode shows up too.
    """

    def __init__(self, swap_after=None, train_region=None):
        super().__init__()
        self.swap_after = swap_after
        self.train_region = train_region
        self.calls = []

    def forward(self, images, steps=None):
        self.calls.append(steps)
        first, second = TOP_LEFT, BOTTOM_RIGHT
        if self.swap_after is not None and steps is not None and steps > self.swap_after:
            first, second = second, first
        if self.training and self.train_region is not None:
            first = self.train_region
        a = torch.tanh(images[:, :, first[0], first[1]]).sum((1, 2, 3))
        b = torch.tanh(images[:, :, second[0], second[1]]).sum((1, 2, 3))
        return torch.stack([a, b], dim=1)


def region_mask(region, margin=0):
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    rows, cols = region
    mask[max(rows.start - margin, 0):rows.stop + margin, max(cols.start - margin, 0):cols.stop + margin] = True
    return mask


def images(batch=2, seed=0):
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def tiny_vitrm(seed=0):
    torch.manual_seed(seed)
    return ViTRM(ViTRMConfig(dim=32, heads=2, layers=1, trained_steps=2, latent_updates=1)).eval()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_explains_only_the_region_the_model_reads(method):
    result = attribute(RegionModel(), images(), steps=1, method=method, target=0)
    maps = result.maps.abs()
    outside = ~region_mask(TOP_LEFT, OCCLUSION_MARGIN if method == "occlusion" else 0)
    assert maps.shape == (2, SIZE, SIZE)
    assert torch.all(maps[:, outside] < 1e-6), "attribution leaked outside the region the model reads"
    assert torch.all(maps[:, region_mask(TOP_LEFT)].sum((1,)) > 1e-3), "the region it reads got no credit"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_target_class_decides_what_is_explained(method):
    x = images(batch=1)
    top_left = attribute(RegionModel(), x, steps=1, method=method, target=0).maps[0].abs()
    bottom_right = attribute(RegionModel(), x, steps=1, method=method, target=1).maps[0].abs()
    assert top_left[region_mask(TOP_LEFT)].sum() > 10 * top_left[region_mask(BOTTOM_RIGHT)].sum()
    assert bottom_right[region_mask(BOTTOM_RIGHT)].sum() > 10 * bottom_right[region_mask(TOP_LEFT)].sum()


def test_without_a_target_each_image_explains_its_own_predicted_class():
    x = torch.zeros(2, 3, SIZE, SIZE)
    x[0][(slice(None),) + TOP_LEFT] = 1.0       # image 0 is predicted as class 0
    x[1][(slice(None),) + BOTTOM_RIGHT] = 1.0   # image 1 as class 1
    result = attribute(RegionModel(), x, steps=1, method="saliency")
    assert result.target.tolist() == [0, 1]
    assert result.maps[0][region_mask(TOP_LEFT)].sum() > result.maps[0][region_mask(BOTTOM_RIGHT)].sum()
    assert result.maps[1][region_mask(BOTTOM_RIGHT)].sum() > result.maps[1][region_mask(TOP_LEFT)].sum()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_model_is_run_to_exactly_the_requested_step(method):
    model = RegionModel(swap_after=2)
    x = images(batch=1)
    early = attribute(model, x, steps=2, method=method, target=0).maps[0].abs()
    late = attribute(model, x, steps=3, method=method, target=0).maps[0].abs()
    assert set(model.calls) == {2, 3}
    assert early[region_mask(TOP_LEFT)].sum() > 10 * early[region_mask(BOTTOM_RIGHT)].sum()
    assert late[region_mask(BOTTOM_RIGHT)].sum() > 10 * late[region_mask(TOP_LEFT)].sum()


def test_attribution_runs_in_eval_mode_and_restores_the_mode():
    model = RegionModel(train_region=BOTTOM_RIGHT).train()
    result = attribute(model, images(batch=1), steps=1, method="saliency", target=0)
    assert model.training, "the caller's mode must be restored"
    assert result.maps[0][region_mask(TOP_LEFT)].sum() > 0
    assert result.maps[0][region_mask(BOTTOM_RIGHT)].sum() == 0, "attributed in training mode"


def test_step_model_is_the_vitrm_run_to_step_t():
    model, x = tiny_vitrm(), images()
    trace = model.trace(x, steps=3, attention=False)
    with torch.no_grad():
        for t in (1, 2, 3):
            torch.testing.assert_close(StepModel(model, t)(x), trace.logits[t - 1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_on_a_vitrm_every_method_gives_a_finite_map_per_image_and_its_time(method):
    model, x = tiny_vitrm(), images()
    result = attribute(model, x, steps=3, method=method)
    expected_target = model.trace(x, steps=3, attention=False).probs[-1].argmax(-1)
    assert result.maps.shape == (2, SIZE, SIZE)
    assert torch.isfinite(result.maps).all()
    assert result.maps.abs().sum() > 0
    assert result.target.tolist() == expected_target.tolist()
    assert result.seconds > 0 and result.steps == 3 and result.method == method


def test_a_row_across_steps_holds_a_fixed_target_when_given_one():
    model, x = tiny_vitrm(), images(batch=1)
    row = attribute_steps(model, x, steps=[1, 2, 4], method="saliency", target=7)
    assert [r.steps for r in row] == [1, 2, 4]
    assert all(r.target.tolist() == [7] for r in row)
    assert not torch.allclose(row[0].maps, row[2].maps), "different steps should explain different models"


def test_gradient_shap_is_repeatable_and_leaves_the_global_random_state_alone():
    model, x = tiny_vitrm(), images(batch=1)
    torch.manual_seed(123)
    np.random.seed(123)
    expected_next = (torch.rand(1), np.random.rand())
    torch.manual_seed(123)
    np.random.seed(123)
    first = attribute(model, x, steps=2, method="gradient_shap").maps
    assert (torch.rand(1), np.random.rand()) == expected_next
    second = attribute(model, x, steps=2, method="gradient_shap").maps
    torch.testing.assert_close(first, second)


def test_an_unknown_method_is_refused_by_name():
    with pytest.raises(ValueError, match="lime"):
        attribute(RegionModel(), images(), steps=1, method="lime")
