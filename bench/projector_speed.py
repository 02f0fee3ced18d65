"""The *Answers over steps* map in a real browser: how long 10,000 points take to draw, and to move a step.

    python -m bench.projector_speed [--checkpoint DIR] [--moves 10]

Starts the real `streamlit run app/main.py` on 127.0.0.1 with the shipped checkpoints/ (the refining model in
focus, as a first visit opens it) and drives headless Chromium (/usr/bin/chromium, Selenium) at 1366x768. On
*Dataset analysis* it measures, inside the page (``performance.now()``, at every animation frame):

* **open**: from the click on the *Answers over steps* section to the first frame that shows the map drawn:
  a Plotly chart, not stale, titled with the slider's step, holding every point of the projection (10,000 for
  the shipped maps) with its WebGL canvas in place; and to the settled page (the script finished, nothing stale);
* **step moves**: ``--moves`` clicks on the map's own step slider (Plotly's, under the map), each on the next
  step's mark, up and down the range from step 1; each from the pointerdown to the first frame that shows the map of
  the new step, drawn as above, and to the settled page; each click waits for the page to settle first;
* **Play**: from step 1, a click on the map's Play, to the frame that shows the last step drawn, against the
  nominal pace (the duration of a frame its Play button asks for, a step), and whether every step was drawn, in order;
* **bytes**: what the server sent the page over its websocket (Streamlit sends every element and every chart's
  JSON there) for the open and for each move, counted in the page by testkit/page_weight.py; and the size
  of the chart's figure as the browser holds it (its data and layout as JSON).

``--checkpoint DIR`` serves DIR alone (a checkpoint with ``projection.safetensors`` and metrics) instead.

Headless Chromium draws WebGL with SwiftShader, on the CPU: a browser with a GPU draws the points faster, and
a machine busy with other work (training runs) makes every figure slower; the load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.browser_speed import until
from testkit import chromium, page_weight

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1366, 768)
SECTION = "Answers over steps"
CHART = "[data-testid='stPlotlyChart']"

# At every animation frame (just before the browser paints it): the step of the map drawn, if any, and whether the
# page is settled; a row whenever that changes. The map is drawn when a chart, not stale, titled "... after step K
# (...)", holds every point with Plotly's WebGL canvas in place. Key presses and clicks are recorded as events.
RECORD = r"""
if (window.__mapFrames) { cancelAnimationFrame(window.__mapFrames); }
window.__map = [];
window.__mapEvents = [];
let lastMap = "";
function mapState(expected) {
  let drawn = null, points = 0, figure = 0;
  for (const gd of document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")) {
    if (gd.closest("[data-stale='true']") || !gd._fullLayout || !gd._fullData) continue;
    const title = (gd._fullLayout.title && gd._fullLayout.title.text) || "";
    const m = title.match(/after step (\d+) \(/);
    if (!m) continue;
    points = gd._fullData.reduce((s, t) => s + (t._length || 0), 0);
    if (points >= expected && gd._fullLayout._glcanvas && gd.calcdata) drawn = m[1];
  }
  const app = document.querySelector("[data-testid='stApp']");
  const settled = !!app && app.getAttribute('data-test-script-state') === 'notRunning'
                  && !document.querySelector("[data-stale='true']");
  const state = app ? app.getAttribute('data-test-script-state') : null;
  return {drawn: drawn, points: points, settled: settled, state: state, bytes: window.__wsBytes || 0};
}
const expected = arguments[0];
function frame() {
  const s = mapState(expected);
  const key = JSON.stringify([s.drawn, s.points, s.settled, s.state]);
  if (key !== lastMap) { lastMap = key; s.t = performance.now(); window.__map.push(s); }
  window.__mapFrames = requestAnimationFrame(frame);
}
window.__mapFrames = requestAnimationFrame(frame);
if (!window.__mapListening) {
  window.__mapListening = true;
  for (const kind of ["pointerdown", "keydown", "click"]) {
    document.addEventListener(kind, () => window.__mapEvents.push({kind: kind, t: performance.now(),
                                                                   bytes: window.__wsBytes || 0}), true);
  }
}
"""
READ = "return [window.__map || [], window.__mapEvents || []];"
FIGURE_BYTES = """
for (const gd of document.querySelectorAll("[data-testid='stPlotlyChart'] .js-plotly-plot")) {
  if (gd.closest("[data-stale='true']") || !gd._fullLayout) continue;
  const title = (gd._fullLayout.title && gd._fullLayout.title.text) || "";
  if (/after step \\d+ \\(/.test(title))
    return JSON.stringify({data: gd.data, layout: gd.layout,
                           frames: gd._transitionData ? gd._transitionData._frames : []}, (k, v) =>
      ArrayBuffer.isView(v) ? Array.from(v) : v).length;
}
return null;
"""
WEBGL = """
const g = document.createElement('canvas').getContext('webgl');
if (!g) return 'none';
const info = g.getExtension('WEBGL_debug_renderer_info');
return info ? g.getParameter(info.UNMASKED_RENDERER_WEBGL) : 'webgl';
"""


def browser(profile: Path):
    """Chromium showing pages at SIZE (the window left at Chromium's own size), counting its websocket's bytes."""
    driver = chromium.start(profile, window=None, page_load_timeout=300, script_timeout=120)
    width, height = SIZE
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    page_weight.count_websocket_bytes(driver)      # window.__wsBytes: what the page's websocket received
    return driver


def settled(driver) -> bool:
    return driver.execute_script(
        "const app = document.querySelector(\"[data-testid='stApp']\");"
        "return !!app && app.getAttribute('data-test-script-state') === 'notRunning'"
        "  && !document.querySelector(\"[data-stale='true']\");")


def settle(driver, quiet: float = 0.5, timeout: float = 300) -> None:
    """Until the page has been settled for ``quiet`` seconds in a row."""
    since = [None]

    def check():
        if not settled(driver):
            since[0] = None
        elif since[0] is None:
            since[0] = time.monotonic()
        return since[0] is not None and time.monotonic() - since[0] >= quiet
    until(check, timeout, "a settled page")


def timed(driver, step: str, timeout: float = 300) -> dict:
    """From the recorded action to the map of ``step`` drawn, and to the settled page after it; the bytes."""
    def done():
        frames, events = driver.execute_script(READ)
        drawn = next((f for f in frames if f["drawn"] == step), None)
        calm = drawn and next((f for f in frames if f["t"] >= drawn["t"] and f["settled"] and f["drawn"] == step),
                              None)
        return calm and (frames, events, drawn, calm)
    frames, events, drawn, calm = until(done, timeout, f"the map of step {step} drawn")
    action = events[0]
    settle(driver)
    sent = driver.execute_script("return window.__wsBytes || 0;")
    after = [f for f in frames if f["t"] >= action["t"]]
    began = next((i for i, f in enumerate(after) if f["state"] == "running"), None)
    run = [] if began is None else [f["t"] for f in after[began:] if f["state"] == "notRunning"]
    return {"drawn": (drawn["t"] - action["t"]) / 1000, "settled": (calm["t"] - action["t"]) / 1000,
            "script finished": (run[0] - action["t"]) / 1000 if run else None,
            "bytes": sent - action["bytes"], "points": drawn["points"]}


def open_section(driver, url: str, points: int) -> tuple[dict, str]:
    """Open Dataset analysis, then click the section; (its timing, the model whose map it is)."""
    from selenium.webdriver.common.by import By
    driver.get(url + "/dataset")
    section = (By.XPATH, f"//label[.//p[normalize-space()='{SECTION}']]")
    until(lambda: driver.find_elements(*section), 900, f"the {SECTION} section's radio option")
    settle(driver)
    driver.execute_script(RECORD, points)
    driver.find_element(*section).click()
    opened = timed(driver, "1")
    model = driver.execute_script(
        "const r = [...document.querySelectorAll(\"[data-testid='stRadio']\")]"
        "  .find(r => /Model/.test(r.querySelector('[data-testid=\"stWidgetLabel\"]')?.textContent || ''));"
        "const c = r && r.querySelector('input:checked');"
        "return c ? c.closest('label').textContent.trim() : null;")
    return opened, model


def click_step(driver, step: int) -> None:
    """Click the map's own step slider (Plotly's, under the map) at ``step``'s mark, as a user does."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    rail = driver.find_element(By.CSS_SELECTOR, f"{CHART} .slider-rail-touch-rect")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", rail)
    offset = driver.execute_script(
        "const rail = arguments[0].getBoundingClientRect();"
        "const mark = [...document.querySelectorAll(arguments[1] + ' .slider-label')]"
        "  .find(l => l.textContent.trim().split('=')[0] === arguments[2]).getBoundingClientRect();"
        "return mark.left + mark.width / 2 - (rail.left + rail.width / 2);", rail, CHART, str(step))
    ActionChains(driver).move_to_element_with_offset(rail, round(offset), 0).click().perform()


def step_moves(driver, moves: int, points: int, steps: int) -> list[dict]:
    """``moves`` clicks on the next step's mark, up and down the range from step 1. (The map before its steps moved
    in the browser had a Streamlit slider above it: that one is moved with the arrow keys, for a comparison.)"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    streamlit_slider = not driver.find_elements(By.CSS_SELECTOR, f"{CHART} .slider-rail-touch-rect")
    out, value, direction = [], 1, 1
    for _ in range(moves):
        if not 1 <= value + direction <= steps:
            direction = -direction
        value += direction
        settle(driver, quiet=0.3)
        driver.execute_script(RECORD, points)
        if streamlit_slider:
            slider = driver.find_element(By.CSS_SELECTOR, "[data-testid='stSlider'] input[type='range']")
            driver.execute_script("arguments[0].focus();", slider)
            slider.send_keys(Keys.ARROW_RIGHT if direction > 0 else Keys.ARROW_LEFT)
        else:
            click_step(driver, value)
        out.append(timed(driver, str(value)) | {"step": value})
    return out


def has_play(driver) -> bool:
    from selenium.webdriver.common.by import By
    return bool(driver.find_elements(By.CSS_SELECTOR, f"{CHART} .updatemenu-button"))


def play(driver, points: int, steps: int) -> dict:
    """From step 1, a click on the map's Play: the time to the last step drawn, and the steps drawn in order."""
    from selenium.webdriver.common.by import By

    settle(driver, quiet=0.3)
    driver.execute_script(RECORD, points)
    click_step(driver, 1)
    timed(driver, "1")
    driver.execute_script(RECORD, points)
    driver.find_element(By.XPATH, "//*[@data-testid='stPlotlyChart']//*[contains(@class, 'updatemenu-button')]"
                                  "[.//*[contains(text(), 'Play')]]").click()
    last = timed(driver, str(steps))
    frames, _ = driver.execute_script(READ)
    pace = driver.execute_script(     # the map's own pace, read from its Play button, not a copy
        f"const gd = document.querySelector(\"{CHART} .js-plotly-plot\");"
        "return gd.layout.updatemenus[0].buttons.find(b => /Play/.test(b.label)).args[1].frame.duration;")
    shown = []
    for f in frames:
        if f["drawn"] is not None and (not shown or shown[-1] != f["drawn"]):
            shown.append(f["drawn"])
    return {"seconds": last["drawn"], "shown": shown, "bytes": last["bytes"], "frame_ms": pace}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="serve this checkpoint alone (default: the shipped "
                                                        "checkpoints/, the refining model in focus)")
    parser.add_argument("--moves", type=int, default=10, help="step moves to time (clicks on the next mark)")
    args = parser.parse_args()
    if not chromium.available():
        raise SystemExit(f"{chromium.CHROMIUM} or {chromium.CHROMEDRIVER} is absent "
                         "(apt-get install chromium chromium-driver)")

    import vitrm
    from testkit.streamlit_client import ServerError, serve

    command = "python -m bench.projector_speed " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.checkpoint:
            root = tmp / "checkpoints"
            root.mkdir()
            (root / args.checkpoint.name).symlink_to(args.checkpoint.resolve())
            mapped = args.checkpoint
        else:
            root, mapped = ROOT / "checkpoints", ROOT / "checkpoints" / "vitrm-cifar10-refine"
        projection = vitrm.sidefiles.read_projection(mapped, vitrm.read_config(mapped).num_classes)
        if projection is None:
            raise SystemExit(f"{mapped} has no {vitrm.projection.FILE} (python -m vitrm project)")
        load_before = os.getloadavg()
        started = time.perf_counter()
        env = {"VITRM_CHECKPOINTS": str(root), "OMP_NUM_THREADS": "1"}
        try:
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(serve(tmp / "streamlit.log", env=env, timeout=300))
                driver = browser(tmp / "chromium-profile")
                stack.callback(driver.quit)
                webgl = driver.execute_script(WEBGL)
                opened, model = open_section(driver, url, projection.images)
                figure = driver.execute_script(FIGURE_BYTES)
                print(f"open: {opened}", flush=True)
                moves = step_moves(driver, args.moves, projection.images, projection.steps)
                for m in moves:
                    print(f"step {m['step']}: {m}", flush=True)
                played = play(driver, projection.images, projection.steps) if has_play(driver) else None
                print(f"play: {played}", flush=True)
        except (ServerError, TimeoutError) as e:
            log = tmp / "streamlit.log"
            raise SystemExit(f"{e}\nserver log:\n{log.read_text()[-3000:] if log.exists() else '(none)'}") from e
    load_after = os.getloadavg()

    def ms(values) -> str:
        return f"{statistics.median(values) * 1000:,.0f} ms (max {max(values) * 1000:,.0f})"
    rows = [
        ("open the section to the map drawn (step 1)", f"{opened['drawn'] * 1000:,.0f} ms",
         f"{opened['settled'] * 1000:,.0f} ms", f"{opened['bytes']:,}"),
        (f"step move to the new map drawn, median of {len(moves)}", ms([m["drawn"] for m in moves]),
         ms([m["settled"] for m in moves]), f"{statistics.median(m['bytes'] for m in moves):,.0f} (median)"),
    ]
    if played:
        nominal = (projection.steps - 1) * played["frame_ms"] / 1000
        in_order = played["shown"] == [str(s) for s in range(1, projection.steps + 1)]
        rows.append((f"Play, steps 1→{projection.steps} (nominal {nominal:.1f} s)",
                     f"{played['seconds']:.1f} s; every step drawn in order: "
                     f"{'yes' if in_order else 'no: ' + ', '.join(played['shown'])}", "—", f"{played['bytes']:,}"))
    print()
    print(f"command: {command}")
    held = f"{figure:,} characters of JSON" if figure else "?"
    print(f"map: {mapped.relative_to(ROOT) if mapped.is_relative_to(ROOT) else mapped} "
          f"({projection.images:,} images x {projection.steps} steps; the model in focus: {model}); "
          f"{opened['points']:,} points drawn; the figure as the browser holds it, every step's frame included: "
          f"{held}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), chromium "
          f"{chromium.version()} at {SIZE[0]}x{SIZE[1]}, WebGL: {webgl}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; {time.perf_counter() - started:.0f} s in all")
    print()
    print("| | to the map drawn | to the settled page | bytes sent to the page |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
