"""The analysis workbench in a real browser (headless Chromium): a click on a confusion-matrix cell lists
that cell's images, a row of the table opens in the scrubber, and Next steps through the list.

Uses test_browser's helpers; its own server, on a tiny ViTRM evaluated here by vitrm.evaluate on 20
real CIFAR-10 test images (the app's gallery). Skipped where Chromium is absent, like test_browser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_app import gallery_imagefolder
from test_browser import FIRST_WAIT, NOT_STALE, TINY, Server, browser, evidence, pytestmark, settle, wait  # noqa: F401

import vitrm
from testkit.streamlit_client import serve
from vitrm import ViTRM
from vitrm.evaluate import evaluate_checkpoint


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-analysis")
    data = root / "data"
    gallery_imagefolder(data)
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), root / "checkpoints" / "vitrm-evaluated")
    evaluate_checkpoint(root / "checkpoints" / "vitrm-evaluated", f"imagefolder:{data}", cache_dir=None,
                        progress=False)
    return root / "checkpoints" / "vitrm-evaluated"


@pytest.fixture(scope="module")
def analysis_server(evaluated, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("analysis-server") / "streamlit.log"
    with serve(log_path, env={"VITRM_CHECKPOINTS": str(evaluated.parent)}, timeout=FIRST_WAIT) as url:
        yield Server(url, log_path)


def caption_containing(driver, words: str, timeout: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    xpath = f"//*[@data-testid='stCaptionContainer'][{NOT_STALE}][contains(normalize-space(), \"{words}\")]"
    return wait(driver, timeout).until(EC.visibility_of_element_located((By.XPATH, xpath)),
                                       message=f"no caption with '{words}'").text


def click_radio(driver, label: str, timeout: float = 60) -> None:
    """Click a radio option once it is on the page (the page may settle before the first run has drawn it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    option = (By.XPATH, f"//label[{NOT_STALE}][.//p[normalize-space()='{label}']]")
    wait(driver, timeout).until(EC.element_to_be_clickable(option), message=f"no radio option '{label}'")
    settle(driver)
    driver.find_element(*option).click()


def test_a_confusion_cell_lists_its_images_and_a_row_opens_in_the_scrubber_with_next(
        analysis_server, browser, evaluated, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    measured = json.loads((evaluated / "metrics.json").read_text())
    names, step = measured["class_names"], TINY.trained_steps
    confusion = measured["confusion_by_step"][step - 1]
    cells = [(i, j) for i in range(len(names)) for j in range(len(names))]
    true, predicted = max(cells, key=lambda c: confusion[c[0]][c[1]])
    count = confusion[true][predicted]
    predictions = vitrm.read_predictions(evaluated)
    listed = predictions[(predictions["label"] == true) & (predictions[f"pred_{step}"] == predicted)]

    with evidence(browser, analysis_server, tmp_path / "evidence"):
        browser.get(analysis_server.url + "/dataset")
        settle(browser, 2 * FIRST_WAIT)       # the first run imports torchvision to list the test split
        click_radio(browser, "Confusion matrix", FIRST_WAIT)
        settle(browser)
        # The click layer is the chart's last scatter trace, one marker per cell, row by row.
        points = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace:last-child path.point")
        assert len(points) == len(cells)
        ActionChains(browser).move_to_element(points[cells.index((true, predicted))]).click().perform()
        caption_containing(browser, f"{count:,} of {len(predictions):,} images")
        settle(browser)
        browser.save_screenshot(str(tmp_path / "table.png"))

        # Select the first row: the checkbox column at the grid's left, one row below the header.
        grid = browser.find_element(By.CSS_SELECTOR, "[data-testid='stDataFrame']")
        header = 35
        ActionChains(browser).move_to_element_with_offset(
            grid, -grid.size["width"] // 2 + 15, -grid.size["height"] // 2 + header + 20).click().perform()
        first = listed.iloc[0]
        assert Path(first["path"]).name in caption_containing(browser, f"Image 1 of {count:,} in the list")
        settle(browser)
        if count > 1:
            browser.find_element(By.XPATH, f"//button[{NOT_STALE}][.//p[normalize-space()='Next ▶']]").click()
            caption_containing(browser, f"Image 2 of {count:,} in the list")
            assert Path(listed.iloc[1]["path"]).name in caption_containing(browser, "Image 2 of")
