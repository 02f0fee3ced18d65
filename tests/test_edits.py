"""vitrm.edits: the what-if edits are pure, bounded, do what they say, and parting steps are where answers differ."""

from __future__ import annotations

import pytest
import torch

from vitrm import edits
from vitrm.edits import Edit, EditError


def picture(seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_covering_a_patch_fills_exactly_its_pixels_with_grey_and_leaves_the_rest():
    image = picture()
    out = edits.apply(image, [Edit("cover", patches=(5,))], grid=4)     # row 1, column 1 of a 4x4 grid: 8x8 pixels
    assert out.dtype == torch.uint8 and out.shape == image.shape
    assert (out[:, 8:16, 8:16] == edits.COVER_FILL).all()
    changed = (out != image).any(0)
    changed[8:16, 8:16] = False
    assert not changed.any(), "only the covered patch changes"
    assert edits.patch_box(5, 4, 32) == (8, 8, 16, 16)


def test_the_input_is_never_changed_and_the_same_list_gives_the_same_pixels():
    image = picture(1)
    before = image.clone()
    chain = [Edit("noise", 0.2), Edit("blur", 1.5), Edit("rotate", 30), Edit("cover", patches=(0, 15))]
    first, second = edits.apply(image, chain, 4), edits.apply(image, chain, 4)
    assert torch.equal(image, before)
    assert torch.equal(first, second), "noise is seeded: an edited image is a pure function of (image, edits)"
    assert not torch.equal(first, image)


@pytest.mark.parametrize("edit", [Edit("brightness", 1.0), Edit("crop", 1.0), Edit("rotate", 0.0)])
def test_an_amount_at_its_neutral_value_leaves_the_image_as_it_was(edit):
    image = picture(2)
    assert torch.equal(edits.apply(image, [edit], 4), image)


def test_each_edit_moves_the_pixels_the_way_it_says():
    image = picture(3)
    darker = edits.apply(image, [Edit("brightness", 0.5)], 4)
    assert darker.float().mean() < 0.6 * image.float().mean()
    blurred = edits.apply(image, [Edit("blur", 2.0)], 4).float()
    assert blurred.std() < 0.5 * image.float().std(), "blur smooths random pixels"
    noisy = edits.apply(torch.full((3, 32, 32), 128, dtype=torch.uint8), [Edit("noise", 0.1)], 4).float()
    assert 20 < noisy.std() < 32, "std about 0.1 of 255"
    half = torch.zeros(3, 32, 32, dtype=torch.uint8)
    half[:, :, 16:] = 255
    cropped = edits.apply(half, [Edit("crop", 0.5)], 4)        # the centre 16 columns, widened to 32
    assert cropped[:, :, :4].float().mean() < 10 and cropped[:, :, -4:].float().mean() > 245
    turned = edits.apply(half, [Edit("rotate", 180)], 4)
    assert turned[:, 4:28, 2:12].float().mean() > 245 and turned[:, 4:28, 20:30].float().mean() < 10


@pytest.mark.parametrize("edit_list, message", [
    ([Edit("noise", 0.1)] * (edits.MAX_EDITS + 1), "at most"),
    ([Edit("sharpen", 1.0)], "unknown kind"),
    ([Edit("noise", 5.0)], "outside"),
    ([Edit("blur", float("nan"))], "outside"),
    ([Edit("rotate", True)], "outside"),
    ([Edit("cover", patches=())], "cover needs"),
    ([Edit("cover", patches=(16,))], "0..15"),
    ([Edit("cover", patches=(1, 1))], "distinct"),
    ([Edit("cover", patches=(-1,))], "cover needs"),
])
def test_an_edit_list_out_of_bounds_is_refused_with_a_reason(edit_list, message):
    with pytest.raises(EditError, match=message):
        edits.apply(picture(), edit_list, grid=4)


def test_the_grid_and_the_image_are_checked_too():
    with pytest.raises(EditError, match="grid"):
        edits.apply(picture(), [], grid=edits.MAX_GRID + 1)
    with pytest.raises(EditError, match="uint8"):
        edits.apply(picture().float(), [], grid=4)


def test_parting_steps_are_the_steps_whose_answers_differ():
    a = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.3, 0.7]])
    b = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    assert edits.parting_steps(a, b) == [2, 4]
    assert edits.parting_steps(a, a) == []


def test_every_edit_can_be_said_in_words():
    said = [edits.describe(e) for e in (Edit("cover", patches=(3, 1)), Edit("noise", 0.1), Edit("rotate", -15))]
    assert said == ["cover patches 1, 3", "noise 10%", "rotate -15°"]
