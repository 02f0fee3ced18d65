"""The Explore page's What-if section: the image in focus edited, its trace beside the original's, the steps at
which the answers part; driven through AppTest on test_app's tiny checkpoints and checked against the library
run here (vitrm.edits on the same model input, model.trace on both)."""

from __future__ import annotations

import pytest
import torch
from test_app import GALLERY, TINY, app, lab, run, select_models  # noqa: F401 (fixtures)

import vitrm
from app.text import md
from app.views import what_if
from vitrm.edits import Edit

IMAGE = "cat_0003.jpg"
# Settings tried in turn, as (covered patches, {slider: value}); the test uses the first that makes the tiny
# untrained model answer differently at some step, found here with the library alone.
CANDIDATES = [
    ([0, 5, 10, 15], {"rotate": 90.0}),
    ([], {"brightness": 0.0}),
    ([], {"brightness": 3.0, "noise": 0.5}),
    (list(range(16)), {}),
    ([], {"crop": 0.25, "blur": 4.0}),
]


def probabilities(model, pixels: torch.Tensor, steps: int) -> torch.Tensor:
    batch = vitrm.normalize(pixels[None], model.config.mean, model.config.std)
    return model.trace(batch, steps, attention=False).probs[:, 0]


def as_edits(patches, sliders) -> list[Edit]:
    return ([Edit("cover", patches=tuple(patches))] if patches else []) + [
        Edit(kind, value) for kind, value in sliders.items()]


def table_rows(at) -> list[list[str]]:
    table = next(m.value for m in at.markdown if m.value.startswith("| step |"))
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()[2:]]


def test_what_if_shows_both_answers_by_step_and_the_steps_at_which_they_part(app, lab):
    model = vitrm.load(lab / "vitrm-tiny")
    steps = 2 * TINY.trained_steps                      # the page's default N
    grid = model.config.grid
    pixels = vitrm.to_model_input(vitrm.load_image(GALLERY / IMAGE), model.config.image_size)
    original = probabilities(model, pixels, steps)
    for patches, sliders in CANDIDATES:
        edited = probabilities(model, vitrm.edits.apply(pixels, as_edits(patches, sliders), grid), steps)
        parted = vitrm.edits.parting_steps(original, edited)
        if parted:
            break
    else:
        pytest.fail("no candidate edit changes the tiny model's answer: pick stronger ones")

    at = select_models(run(app), lab, "vitrm-tiny")
    at.selectbox(key="gallery_file").set_value(IMAGE)
    run(at)
    at.session_state[what_if.OPEN] = True
    run(at)
    assert table_rows(at)[0][1] == table_rows(at)[0][2], "before any edit both columns are the original"
    at.multiselect(key="whatif::patches").set_value(patches)
    for kind, value in sliders.items():
        at.slider(key=f"whatif::{kind}").set_value(value)
    run(at)

    names = model.config.class_names
    rows = table_rows(at)
    assert len(rows) == steps
    for s, row in enumerate(rows, start=1):
        a, b = int(original[s - 1].argmax()), int(edited[s - 1].argmax())
        assert row[1] == md(f"{names[a]} {original[s - 1, a]:.0%}"), f"original at step {s}"
        assert row[2] == md(f"{names[b]} {edited[s - 1, b]:.0%}"), f"edited at step {s}"
        assert (row[3] == "parts here") == (s in parted), f"step {s}"
    sentence = next(m.value for m in at.markdown if m.value.startswith("**Edits:**"))
    assert f"part at step{'s' if len(parted) > 1 else ''} {', '.join(map(str, parted))} of {steps}" in sentence
    assert f"first at step {parted[0]}" in sentence


def test_edits_out_of_range_never_reach_the_model_and_the_grid_numbers_every_patch():
    fig = what_if.grid_figure(torch.zeros(32, 32, 3, dtype=torch.uint8).numpy(), 4, {5})
    marks = fig.data[1]
    assert list(marks.customdata) == list(range(16)) and list(marks.text) == [str(p) for p in range(16)]
    assert [w for w in marks.marker.line.width] == [3 if p == 5 else 0 for p in range(16)], "covered ones ringed"
    for kind, (_, low, high, _, neutral) in what_if.SLIDERS.items():
        lowest, highest = vitrm.edits.KINDS[kind][:2]
        assert low <= neutral <= high
        assert lowest <= high <= highest and (low >= lowest or low == neutral), f"{kind}: the library's bounds"
