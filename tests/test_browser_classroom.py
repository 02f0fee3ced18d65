"""Classroom mode in a real browser (headless Chromium) on a projector's 1366x768 screen: the image, the
current answer, the probability chart and the step slider are all on screen without scrolling, and every
piece of text in the charts is at least 14 px as the browser draws it.

Uses test_browser's helpers and its tiny untrained ViTRM (a server of its own). Skipped where Chromium is absent.
"""

from __future__ import annotations

import pytest
from streamlit_client import serve
from test_browser import (  # noqa: F401  (pytest fixtures and helpers)
    FIRST_WAIT,
    NOT_STALE,
    TINY,
    Server,
    browser,
    checkpoint,
    evidence,
    metric_value,
    pytestmark,
    settle,
    wait,
)

PROJECTOR = (1366, 768)
MIN_PX = 14


@pytest.fixture(scope="module")
def classroom_server(checkpoint, tmp_path_factory):  # noqa: F811
    log_path = tmp_path_factory.mktemp("classroom-server") / "streamlit.log"
    with serve(log_path, env={"VITRM_CHECKPOINTS": str(checkpoint.parent)}, timeout=FIRST_WAIT) as url:
        yield Server(url, log_path)


def box(driver, css: str) -> dict:
    """The viewport rectangle of the first element (not stale) that matches ``css``."""
    rect = driver.execute_script(
        "const all = [...document.querySelectorAll(arguments[0])]"
        "  .filter(e => !e.closest(\"[data-stale='true']\") && e.getBoundingClientRect().height > 0);"
        "if (!all.length) return null;"
        "const r = all[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};", css)
    assert rect is not None, f"nothing on the page matches {css}"
    return rect


def test_classroom_mode_fits_a_projector_screen_with_readable_chart_text(classroom_server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    width, height = PROJECTOR
    browser.set_script_timeout(FIRST_WAIT)        # a loaded 2-core machine answers slowly
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    trained = TINY.trained_steps
    with evidence(browser, classroom_server, tmp_path / "evidence"):
        browser.get(classroom_server.url + "/?image=cat_0000")
        toggle = (By.XPATH, f"//label[{NOT_STALE}][.//p[normalize-space()='Classroom mode']]")
        wait(browser, 2 * FIRST_WAIT).until(EC.presence_of_element_located(toggle), message="no Classroom mode toggle")
        settle(browser, FIRST_WAIT)
        browser.find_element(*toggle).click()
        wait(browser).until(EC.presence_of_element_located(
            (By.XPATH, f"//*[@data-testid='stAlert'][{NOT_STALE}]")), message="no narration in classroom mode")
        metric_value(browser, f"Top class at step {trained}")
        settle(browser, quiet=1.0)
        browser.save_screenshot(str(tmp_path / "classroom.png"))

        assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [width, height]
        scrolled = browser.execute_script(
            "return Math.max(window.scrollY, ...[...document.querySelectorAll("
            "  \"[data-testid='stMain'], [data-testid='stAppViewContainer'], [data-testid='stMainBlockContainer']\")]"
            "  .map(e => e.scrollTop))")
        assert scrolled == 0, "the page opened scrolled"
        main = "[data-testid='stMain'] "
        shown = {"image": box(browser, main + "[data-testid='stImage'] img"),
                 "answer": box(browser, main + "[data-testid='stMetric']"),
                 "probability chart": box(browser, main + ".js-plotly-plot"),
                 "step slider": box(browser, main + "[data-testid='stSlider']")}
        outside = {name: r for name, r in shown.items()
                   if r["top"] < 0 or r["bottom"] > height or r["left"] < 0 or r["right"] > width}
        assert not outside, f"not within the {width}x{height} screen without scrolling: {outside}"

        # The size as drawn: the computed font size times any scaling on the way to the screen (plotly shrinks
        # a bar's label with a transform, not with its font size).
        sizes = browser.execute_script(
            "return [...document.querySelectorAll(\"[data-testid='stMain'] .js-plotly-plot svg text\")]"
            "  .filter(t => t.textContent.trim() && t.getBoundingClientRect().height > 0)"
            "  .map(t => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)"
            "             * t.getBoundingClientRect().height / t.getBBox().height])")
        assert sizes, "no chart text found"
        small = [(t, round(px, 1)) for t, px in sizes if px < MIN_PX - 0.5]
        assert not small, f"chart text under {MIN_PX} px: {small}"
