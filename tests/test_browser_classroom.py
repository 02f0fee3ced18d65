"""Classroom mode in a real browser (headless Chromium), the way a teacher meets it: a fresh page on a projector's
1366x768 screen (and a windowed browser's 1366x625), classroom mode on, Play pressed. The sidebar closes; the image,
the answer, the bars, the step's sentence and Play are on screen without scrolling, in type of 14 px or more, every
bar label whole; Play tells the story from step 1. The Play button's icon and label ("Play",
and "Stop" while playing) show whole, on one line, there and in the normal layout 1400 px wide, as do the
Attribution view's method pills and its toggle's label.

Uses test_browser's helpers and its tiny untrained ViTRM (a server of its own). Skipped where Chromium is absent."""

from __future__ import annotations

import re

import pytest
from test_browser import (  # noqa: F401  (pytest fixtures and helpers)
    FIRST_WAIT,
    NOT_STALE,
    PLAY,
    TINY,
    Server,
    browser,
    checkpoint,
    evidence,
    metric_value,
    press_on_slider,
    pytestmark,
    settle,
    wait,
)

from app.views.scrubber import PLAYING_LINE
from testkit import step_recorder
from testkit.streamlit_client import serve

PROJECTOR = (1366, 768)
WINDOWED = (1366, 625)        # the same projector, the browser in a window
DESKTOP = (1400, 900)
FULL_HD = (1920, 1080)
MIN_PX = 14
PLAY_LABEL, STOP_LABEL = "Play", "Stop"          # each after its icon


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


def open_explore(browser, server: Server, size: tuple[int, int], classroom: bool) -> None:  # noqa: F811
    """The Explore page on a ``size`` screen with a gallery cat, in classroom mode or not, settled."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    width, height = size
    browser.set_script_timeout(FIRST_WAIT)        # a loaded 2-core machine answers slowly
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    browser.get(server.url + "/?image=cat_0000")
    toggle = (By.XPATH, f"//label[{NOT_STALE}][.//p[normalize-space()='Classroom mode']]")
    wait(browser, 2 * FIRST_WAIT).until(EC.presence_of_element_located(toggle), message="no Classroom mode toggle")
    settle(browser, FIRST_WAIT)
    if classroom:
        browser.find_element(*toggle).click()
        wait(browser).until(EC.presence_of_element_located(
            (By.XPATH, f"//*[@data-testid='stAlert'][{NOT_STALE}]")), message="no narration in classroom mode")
    metric_value(browser, f"Top class at step {TINY.trained_steps}")
    settle(browser, quiet=1.0)


# Where a teacher's eye goes, as drawn: the image, the answer (the metric, or while playing the playing line), the
# bars, the step's sentence and Play.
SHOWN = {"image": "[data-testid='stImage'] img", "answer": "[data-testid='stMetric']",
         "bars": ".js-plotly-plot", "sentence": "[data-testid='stAlert']", "Play": "[data-testid='stButton'] button"}
# Every bar's label, with the chart's drawing area: a label cut at the edge showed ".2%" for "12.2%".
BAR_LABELS = """
const plot = [...document.querySelectorAll("[data-testid='stMain'] .js-plotly-plot")]
  .find(e => !e.closest("[data-stale='true']"));
const area = plot.querySelector(".main-svg").getBoundingClientRect();
return [...plot.querySelectorAll(".bartext")].map(t => {
  const r = t.getBoundingClientRect();
  return [t.textContent, r.left >= area.left - 0.5 && r.right <= area.right + 0.5];
});
"""
# The size of the text a viewer reads, as drawn: the sentence, the answer's label and value, the image's caption.
TEXT_SIZES = """
return [...document.querySelectorAll("[data-testid='stMain'] [data-testid='stAlert'] p, "
  + "[data-testid='stMain'] [data-testid='stMetric'] p, [data-testid='stMain'] [data-testid='stMetricValue'], "
  + "[data-testid='stMain'] [data-testid='stImage'] [data-testid='stImageCaption'], "
  + "[data-testid='stMain'] [data-testid='stCaptionContainer']")]
  .filter(e => !e.closest("[data-stale='true']") && e.textContent.trim())
  .map(e => [e.textContent.trim().slice(0, 40), parseFloat(getComputedStyle(e).fontSize)]);
"""


def outside_screen(browser, size: tuple[int, int], shown: dict[str, str]) -> dict:  # noqa: F811
    width, height = size
    rects = {name: box(browser, "[data-testid='stMain'] " + css) for name, css in shown.items()}
    return {name: r for name, r in rects.items()
            if r["top"] < 0 or r["bottom"] > height or r["left"] < 0 or r["right"] > width}


@pytest.mark.parametrize("size", [PROJECTOR, WINDOWED], ids=["projector 1366x768", "windowed browser 1366x625"])
def test_a_teacher_presses_play_on_a_fresh_page_and_the_story_runs_from_step_1_without_scrolling(
        classroom_server, browser, tmp_path, size):  # noqa: F811
    """A fresh page at the projector's size, classroom mode on, Play pressed: the sidebar is closed, the image,
    the answer, the bars, the sentence and Play are on the screen without scrolling, in type of 14 px or more,
    every bar label whole; Play shows step 1, then each step to the trained N, then the extra steps."""
    from selenium.webdriver.common.by import By

    width, height = size
    with evidence(browser, classroom_server, tmp_path / "evidence"):
        open_explore(browser, classroom_server, size, classroom=True)
        browser.save_screenshot(str(tmp_path / "classroom.png"))
        assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [width, height]
        sidebar = box(browser, "[data-testid='stSidebar']")
        assert sidebar["right"] <= 0, f"the sidebar is open in classroom mode: {sidebar}"
        scrolled = browser.execute_script(
            "return Math.max(window.scrollY, ...[...document.querySelectorAll("
            "  \"[data-testid='stMain'], [data-testid='stAppViewContainer'], [data-testid='stMainBlockContainer']\")]"
            "  .map(e => e.scrollTop))")
        assert scrolled == 0, "the page opened scrolled"
        outside = outside_screen(browser, size, SHOWN | {"step slider": "[data-testid='stSlider']"})
        assert not outside, f"not within the {width}x{height} screen without scrolling: {outside}"

        # The size as drawn: the computed font size times any scaling on the way to the screen (plotly shrinks
        # a bar's label with a transform, not with its font size).
        sizes = browser.execute_script(
            "return [...document.querySelectorAll(\"[data-testid='stMain'] .js-plotly-plot svg text\")]"
            "  .filter(t => t.textContent.trim() && t.getBoundingClientRect().height > 0)"
            "  .map(t => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)"
            "             * t.getBoundingClientRect().height / t.getBBox().height])")
        sizes += browser.execute_script(TEXT_SIZES)
        assert sizes, "no text found"
        small = [(t, round(px, 1)) for t, px in sizes if px < MIN_PX - 0.5]
        assert not small, f"text under {MIN_PX} px: {small}"
        labels = browser.execute_script(BAR_LABELS)
        assert labels and all(re.fullmatch(r"\d+\.\d%", text) for text, _ in labels), labels
        assert all(inside for _, inside in labels), f"a bar label is cut at the chart's edge: {labels}"

        step_recorder.start(browser)
        browser.find_element(By.XPATH, PLAY).click()
        wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, f".st-key-{PLAYING_LINE}"),
                            message="Play showed no playing line")
        playing = outside_screen(browser, size, {name: css for name, css in SHOWN.items() if name != "answer"}
                                 | {"playing line with the answer": f".st-key-{PLAYING_LINE}"})
        assert not playing, f"not within the screen while playing: {playing}"
        wait(browser).until(lambda d: d.find_elements(By.XPATH, f"{PLAY}[{NOT_STALE}]") and not d.find_elements(
            By.CSS_SELECTOR, f".st-key-{PLAYING_LINE}"), message="Play did not reach the last step and stop")
        settle(browser)
        _, events, _ = step_recorder.read(browser)
        pressed = next(t for kind, t in events if kind == "click")
        shown = step_recorder.distinct(f.slider for f in step_recorder.read_frames(browser) if f.t >= pressed)
        if shown and shown[0] == str(TINY.trained_steps):
            shown = shown[1:]        # the page as it was when Play was pressed, at the trained N
        n = 2 * TINY.trained_steps
        assert shown[:n] == [str(s) for s in range(1, n + 1)], \
            f"Play showed steps {shown}, not the story from step 1 to the trained N and on"


# What the browser draws of a button's label: the label is the button's markdown container, which cuts a
# label too long for the button with an ellipsis (overflow hidden), so a cut label's scrollWidth exceeds
# its clientWidth; a wrapped one has text on more than one line. Its icon must sit inside the button, before the label.
LABEL_FIT = """
const labelOf = b => b.querySelector("[data-testid='stMarkdownContainer']");
const button = [...document.querySelectorAll("[data-testid='stMain'] button")].find(b =>
  !b.closest("[data-stale='true']") && b.getBoundingClientRect().height > 0 && labelOf(b)
  && labelOf(b).textContent.trim() === arguments[0]);
if (!button) return null;
const label = labelOf(button);
const icon = button.querySelector("[data-testid='stIconMaterial']");
const text = document.createRange();
text.selectNodeContents(label);
const lineTops = new Set([...text.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
const drawn = text.getBoundingClientRect(), inside = button.getBoundingClientRect();
const column = button.closest("[data-testid='stColumn']").getBoundingClientRect();
return {lines: lineTops.size, height: label.getBoundingClientRect().height,
        lineHeight: parseFloat(getComputedStyle(label.querySelector("p") || label).lineHeight),
        scrollWidth: label.scrollWidth, clientWidth: label.clientWidth,
        textInsideButton: drawn.left >= inside.left && drawn.right <= inside.right && !!icon
          && icon.getBoundingClientRect().left >= inside.left && icon.getBoundingClientRect().right <= drawn.left,
        buttonInsideColumn: inside.left >= column.left - 0.5 && inside.right <= column.right + 0.5};
"""


def assert_label_whole_on_one_line(browser, label: str, where: str) -> None:  # noqa: F811
    fit = wait(browser).until(lambda d: d.execute_script(LABEL_FIT, label), message=f"no {label!r} button {where}")
    assert fit["lines"] == 1 and fit["height"] < 1.5 * fit["lineHeight"], f"{label!r} wraps {where}: {fit}"
    assert fit["scrollWidth"] <= fit["clientWidth"], f"{label!r} is cut short {where}: {fit}"
    assert fit["textInsideButton"] and fit["buttonInsideColumn"], f"{label!r} spills out {where}: {fit}"


@pytest.mark.parametrize("size, classroom", [(PROJECTOR, True), (DESKTOP, False)],
                         ids=["classroom mode at 1366x768", "normal layout at 1400x900"])
def test_the_play_and_stop_labels_show_whole_on_one_line(classroom_server, browser, tmp_path, size, classroom):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    where = f"{'in classroom mode' if classroom else 'in the normal layout'} at {size[0]}x{size[1]}"
    with evidence(browser, classroom_server, tmp_path / "evidence"):
        open_explore(browser, classroom_server, size, classroom)
        assert_label_whole_on_one_line(browser, PLAY_LABEL, where)
        # Stop is the longer label, shown only while playing: play from step 1, so it stays for N - 1 steps.
        press_on_slider(browser, Keys.HOME, "1")
        settle(browser)
        browser.find_element(By.XPATH, PLAY).click()
        assert_label_whole_on_one_line(browser, STOP_LABEL, where)
        browser.save_screenshot(str(tmp_path / "playing.png"))
        if classroom:       # what Play shows in the slider's and the answer's place fits the screen too
            main = "[data-testid='stMain'] "
            shown = {"playing line": box(browser, main + f".st-key-{PLAYING_LINE}"),
                     "probability chart": box(browser, main + ".js-plotly-plot")}
            outside = {name: r for name, r in shown.items() if r["top"] < 0 or r["bottom"] > size[1]}
            assert not outside, f"not within the screen while playing {where}: {outside}"
        settle(browser, quiet=2.0)           # Play has reached the last step and stopped


# Every pill and the toggle's label of the Attribution view, as drawn: a pill past its column's right edge is cut
# off there (the row of pills does not wrap), and a label too long for its column ends in an ellipsis (the width
# the text needs, measured in its font, exceeds its box).
ATTRIBUTION_FIT = """
const main = document.querySelector("[data-testid='stMain']");
const fresh = e => !e.closest("[data-stale='true']") && e.getBoundingClientRect().height > 0;
const group = [...main.querySelectorAll("[data-testid='stButtonGroup']")].find(fresh);
const toggle = [...main.querySelectorAll("[data-testid='stCheckbox']")].find(e => fresh(e)
  && e.textContent.trim().startsWith("Recompute when"));
if (!group || !toggle) return null;
const column = group.closest("[data-testid='stColumn']") || group.closest("[data-testid='stVerticalBlock']");
const edge = column.getBoundingClientRect().right;
const label = toggle.querySelector("[data-testid='stMarkdownContainer']");
// The label's text as laid out in one line in its own font: an ellipsis hides how wide it really is.
const textWidth = e => {
  const context = document.createElement("canvas").getContext("2d");
  context.font = getComputedStyle(e.querySelector("p") || e).font;
  return context.measureText(e.textContent.trim()).width;
};
const pills = [...group.querySelectorAll("button")].filter(b => b.textContent.trim());
return {pills: pills.map(b => [b.textContent.trim(), b.getBoundingClientRect().right <= edge + 0.5]),
        toggle: [label.textContent.trim(), textWidth(label) <= label.clientWidth + 0.5]};
"""


@pytest.mark.parametrize("size", [PROJECTOR, DESKTOP], ids=["at 1366x768", "at 1400x900"])
def test_the_attribution_view_shows_every_method_and_its_toggle_whole(classroom_server, browser, tmp_path, size):  # noqa: F811
    from selenium.webdriver.common.by import By

    from vitrm import ATTRIBUTION_METHODS

    with evidence(browser, classroom_server, tmp_path / "evidence"):
        open_explore(browser, classroom_server, size, classroom=False)
        browser.find_element(By.XPATH, f"//label[{NOT_STALE}][.//p[normalize-space()='Attribution']]").click()
        fit = wait(browser).until(lambda d: d.execute_script(ATTRIBUTION_FIT), message="no Attribution controls")
        settle(browser)
        fit = browser.execute_script(ATTRIBUTION_FIT)
        browser.save_screenshot(str(tmp_path / "attribution.png"))
        assert [name for name, _ in fit["pills"]] == list(ATTRIBUTION_METHODS.values())
        cut = [name for name, whole in fit["pills"] if not whole]
        assert not cut, f"method pills cut off at the column's edge at {size}: {cut}"
        assert fit["toggle"][1], f"the toggle's label {fit['toggle'][0]!r} is cut short at {size}"


# Each chart's title, whether plotly's toolbar (present, shown on hover) covers it, and how many legend entries lie
# outside the legend's box (a legend too long for its chart scrolls, its last entries cut off).
CHART_LAYOUT = """
return [...document.querySelectorAll("[data-testid='stMain'] .js-plotly-plot")]
  .filter(p => !p.closest("[data-stale='true']")).map(p => {
    const rect = e => e && e.getBoundingClientRect();
    const title = p.querySelector(".gtitle"), t = rect(title), m = rect(p.querySelector(".modebar"));
    const covered = !!(t && m && m.width > 0 && t.right > m.left && t.left < m.right && t.bottom > m.top
                       && t.top < m.bottom);
    const box = rect(p.querySelector(".legend .bg"));
    const cut = box ? [...p.querySelectorAll(".legend .traces")].map(rect)
      .filter(r => r.bottom > box.bottom + 1 || r.top < box.top - 1).length : 0;
    return [title ? title.textContent : "(untitled)", covered, cut];
  });
"""


def test_at_1366_the_answer_is_on_the_first_screen_and_no_toolbar_or_legend_hides_a_chart_text(
        classroom_server, browser, tmp_path):  # noqa: F811
    width, height = PROJECTOR
    with evidence(browser, classroom_server, tmp_path / "evidence"):
        open_explore(browser, classroom_server, PROJECTOR, classroom=False)
        browser.save_screenshot(str(tmp_path / "explore.png"))
        answer = box(browser, "[data-testid='stMain'] [data-testid='stMetric']")
        assert answer["bottom"] <= height, f"the answer is below the fold of a {width}x{height} screen: {answer}"
        charts = browser.execute_script(CHART_LAYOUT)
        assert len(charts) >= 4, charts
        covered = [title for title, over, _ in charts if over]
        assert not covered, f"plotly's toolbar covers these charts' titles: {covered}"
        cut = [(title, n) for title, _, n in charts if n]
        assert not cut, f"legend entries cut off (the legend scrolls): {cut}"


def test_the_how_vitrm_works_diagram_is_drawn_in_type_of_14_px_at_1366(classroom_server, browser, tmp_path):  # noqa: F811
    """At 1366x768 (beside the open sidebar) and at 1920x1080 the diagram's every text is drawn at 14 px or more; at
    1920 the whole diagram is on the first screen (stretched to the page's width it was 1,200 px tall there)."""
    texts = "[data-testid='stMain'] [data-testid='stGraphVizChart'] svg text"
    for width, height in (PROJECTOR, FULL_HD):
        with evidence(browser, classroom_server, tmp_path / f"evidence-{width}"):
            browser.set_script_timeout(FIRST_WAIT)
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            browser.get(classroom_server.url + "/how_it_works")
            wait(browser, 2 * FIRST_WAIT).until(lambda d: d.execute_script(
                f"return document.querySelectorAll(\"{texts}\").length"), message="no diagram")
            settle(browser, FIRST_WAIT)
            browser.save_screenshot(str(tmp_path / f"how-{width}.png"))
            sizes = browser.execute_script(
                f"return [...document.querySelectorAll(\"{texts}\")].filter(t => t.textContent.trim())"
                "  .map(t => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)"
                "             * t.getBoundingClientRect().height / t.getBBox().height])")
            small = [(t, round(px, 1)) for t, px in sizes if px < MIN_PX - 0.5]
            assert sizes and not small, f"diagram text under {MIN_PX} px at {width} px: {small}"
            if width == FULL_HD[0]:
                drawn = box(browser, "[data-testid='stMain'] [data-testid='stGraphVizChart'] svg")
                assert drawn["bottom"] <= height, f"the diagram runs below the first {width}x{height} screen: {drawn}"
