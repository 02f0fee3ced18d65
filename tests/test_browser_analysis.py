"""The analysis workbench in a real browser (headless Chromium): a click on a confusion-matrix cell lists
that cell's images, a row of the table opens in the scrubber, and Next steps through the list; the map of
answers over steps draws every image and moves its steps in the browser, without a call to the server.

Uses test_browser's helpers; its own server, on a tiny ViTRM evaluated (vitrm.evaluate) and projected
(python -m vitrm project's library call) here on 20 real CIFAR-10 test images (the app's gallery). Skipped
where Chromium is absent, like test_browser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_app import gallery_imagefolder
from test_browser import FIRST_WAIT, NOT_STALE, TINY, Server, browser, evidence, pytestmark, settle, wait  # noqa: F401

import vitrm
from testkit import page_weight
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
    vitrm.projection.project_checkpoint(root / "checkpoints" / "vitrm-evaluated", f"imagefolder:{data}",
                                        cache_dir=None)
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


# The map's state as drawn: its title, and every point of its traces (image index from customdata -> x, y).
MAP_DRAWN = """
const gd = [...document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")]
  .find(g => !g.closest("[data-stale='true']") && g._fullLayout && /after step/.test(g._fullLayout.title.text));
if (!gd || !gd._fullLayout._glcanvas) return null;
const points = {};
for (const t of gd._fullData) for (let i = 0; i < t.x.length; i++) points[t.customdata[i]] = [t.x[i], t.y[i]];
return {title: gd._fullLayout.title.text, points: points, bytes: window.__wsBytes};
"""


def test_the_map_of_answers_draws_every_image_and_moves_its_steps_without_the_server(
        analysis_server, browser, evaluated, tmp_path):
    """Answers over steps: every image of projection.safetensors drawn (WebGL) at step 1; a click on step 2's mark
    under the map draws step 2's points and title from the figure's frames, and the server sends nothing: the step
    moves in the browser (a Streamlit slider sent every point again and reran the page)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    saved = vitrm.sidefiles.read_projection(evaluated, TINY.num_classes)
    assert saved.steps >= 2

    def drawn_at(step: int) -> dict:
        return wait(browser, 60).until(lambda d: (m := d.execute_script(MAP_DRAWN)) and f"after step {step} ("
                                       in m["title"] and m, message=f"no map drawn at step {step}")

    def assert_points(shown: dict, step: int) -> None:
        assert sorted(int(i) for i in shown) == saved.index.tolist()
        for i, (x, y) in zip(saved.index.tolist(), saved.coords[step - 1].astype(float).tolist()):
            assert shown[str(i)] == pytest.approx((x, y), abs=1e-3)

    with evidence(browser, analysis_server, tmp_path / "evidence"):
        page_weight.count_websocket_bytes(browser)
        browser.get(analysis_server.url + "/dataset")
        settle(browser, 2 * FIRST_WAIT)
        click_radio(browser, "Answers over steps", FIRST_WAIT)
        first = drawn_at(1)
        settle(browser)
        assert_points(first["points"], 1)
        sent = browser.execute_script("return window.__wsBytes;")
        rail = browser.find_element(By.CSS_SELECTOR, "[data-testid='stPlotlyChart'] .slider-rail-touch-rect")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", rail)
        offset = browser.execute_script(
            "const rail = arguments[0].getBoundingClientRect();"
            "const mark = [...document.querySelectorAll('.slider-label')]"
            "  .find(l => l.textContent.trim().split('=')[0] === '2').getBoundingClientRect();"
            "return mark.left + mark.width / 2 - (rail.left + rail.width / 2);", rail)
        ActionChains(browser).move_to_element_with_offset(rail, round(offset), 0).click().perform()
        second = drawn_at(2)
        browser.save_screenshot(str(tmp_path / "map.png"))
        assert_points(second["points"], 2)
        settle(browser, quiet=1.0)
        assert browser.execute_script("return window.__wsBytes;") == sent, "the step moved through the server"
