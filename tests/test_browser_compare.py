"""Compare with… in a real browser (headless Chromium): a click on an image in the list of disagreements
opens it on the Explore page, named, with the focus model's (A's) answer at A's step.

Uses test_browser's helpers; its own server, on two tiny untrained checkpoints made here and evaluated
by vitrm.evaluate on the same 20 real CIFAR-10 test images (the app's gallery): A a ViTRM (the model a
first visit loads), B its ViT baseline. Which images the two disagree on comes from
``vitrm.compare_predictions`` on their files, A's answer from ``model.trace`` run here. Skipped where
Chromium is absent, like test_browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_app import gallery_imagefolder
from test_browser import (  # noqa: F401  (pytest fixtures and helpers)
    FIRST_WAIT,
    NOT_STALE,
    TINY,
    Server,
    browser,
    evidence,
    expected_top,
    metric_value,
    pytestmark,
    settle,
    wait,
)
from test_browser_analysis import caption_containing, click_radio

import vitrm
from app.views import compare
from testkit.streamlit_client import serve
from vitrm import ViT, ViTRM, vit_config_for
from vitrm.evaluate import evaluate_checkpoint

HEADER = ROW = 35        # the data grid's header and row height in pixels (Streamlit's defaults)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """checkpoints/vitrm-a and checkpoints/vit-b, both evaluated on data/test (20 gallery images)."""
    root = tmp_path_factory.mktemp("browser-compare")
    gallery_imagefolder(root / "data")
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), root / "checkpoints" / "vitrm-a")
    vitrm.save(ViT(vit_config_for(TINY)), root / "checkpoints" / "vit-b")
    for name in ("vitrm-a", "vit-b"):
        evaluate_checkpoint(root / "checkpoints" / name, f"imagefolder:{root / 'data'}", cache_dir=None,
                            progress=False)
    return root


@pytest.fixture(scope="module")
def compare_server(lab, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("compare-server") / "streamlit.log"
    with serve(log_path, env={"VITRM_CHECKPOINTS": str(lab / "checkpoints")}, timeout=FIRST_WAIT) as url:
        yield Server(url, log_path)


def disagreements(lab: Path) -> vitrm.Comparison:
    a, b = lab / "checkpoints" / "vitrm-a", lab / "checkpoints" / "vit-b"
    return vitrm.compare_predictions(vitrm.read_predictions(a), vitrm.read_predictions(b),
                                     classes_a=vitrm.read_config(a).class_names,
                                     classes_b=vitrm.read_config(b).class_names,
                                     step_a=TINY.trained_steps, step_b=1)


def test_a_click_on_a_disagreement_opens_that_image_on_the_explore_page_with_the_focus_models_answer(
        compare_server, browser, lab, tmp_path):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    a, b, step = lab / "checkpoints" / "vitrm-a", lab / "checkpoints" / "vit-b", TINY.trained_steps
    listed = disagreements(lab).disagreements          # in dataset order, the list's default
    # The first row whose answers from A and B differ as the app computes them, so the answer shown tells A from B.
    files = [lab / "data" / p for p in listed["path"][:8]]
    answers = ((row, expected_top(a, file, step), expected_top(b, file, 1)) for row, file in enumerate(files))
    row, answer, _ = next((found for found in answers if found[1] != found[2]), (None, None, None))
    assert row is not None, "the fixture's two models should answer differently on one of the first listed images"
    image = files[row]

    with evidence(browser, compare_server, tmp_path / "evidence"):
        browser.get(compare_server.url + "/dataset")
        settle(browser, 2 * FIRST_WAIT)       # the first run imports torchvision to list the test split
        click_radio(browser, compare.SECTION, FIRST_WAIT)
        caption_containing(browser, f"{len(listed):,} images (A and B disagree (vitrm-a vs vit-b))")
        settle(browser)
        grid = browser.find_element(By.CSS_SELECTOR, "[data-testid='stDataFrame']")   # settled: nothing stale
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", grid)
        browser.save_screenshot(str(tmp_path / "compare.png"))

        # Select the row: the checkbox column at the grid's left, in the row's middle below the header.
        ActionChains(browser).move_to_element_with_offset(
            grid, -grid.size["width"] // 2 + 15, -grid.size["height"] // 2 + HEADER + ROW * row + ROW // 2
        ).click().perform()

        assert image.name in caption_containing(browser, f"Image {row + 1} of {len(listed):,} in the list")
        assert metric_value(browser, f"Top class at step {step}") == answer, "A's answer, at A's step"
        named = (By.XPATH, f"//*[@data-testid='stImageCaption'][{NOT_STALE}]"
                           f"[contains(normalize-space(), '/{image.name}: original')]")     # test/cat/0971.jpg
        assert browser.find_elements(*named), f"the original is shown under its name, {image.name}"
        assert browser.execute_script("return location.pathname").rstrip("/") in ("", "/explore")
        settle(browser)
        browser.save_screenshot(str(tmp_path / "opened.png"))
