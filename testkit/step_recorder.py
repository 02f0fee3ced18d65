"""What the page showed, step by step, recorded inside the browser by a MutationObserver.

Polling through webdriver sees the page only every hundred milliseconds or so, and less often when
the machine is busy: it can miss a step that Play showed, and it cannot tell whether the slider and
the answer ever disagreed. The recorder runs in the page instead. After every change to the page (each
batch of DOM mutations, before the browser paints it) it reads

* the step slider's value,
* the headline's step (the label "Top class at step K" of the answer's st.metric), and whether that
  metric is stale (left from the previous run, which Streamlit fades while a run is in progress),
* while Play runs, when there is no slider: the playing line's step ("Step K of N", in the container
  keyed app.views.scrubber.PLAYING_LINE) as the slider's, and its "Top class at step K" as the headline
  when the view shows the answer there,
* the script's run state (``data-test-script-state``: running or notRunning) and how many elements
  are stale,

and appends a row whenever one of these changed, with ``performance.now()`` in milliseconds. A keydown
or a click anywhere is recorded as an event row too, so the time from a user's action to the page
it leads to is measured in the page's own clock. Used by tests/test_browser.py and
bench/browser_speed.py.

Not every recorded state is seen: Streamlit applies a run's elements one message at a time, and two
applied between two paints leave an intermediate state that no frame shows. So the same snapshot is
also taken at every animation frame, just before the browser paints (``read_frames``): the frames a
viewer actually saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.views.scrubber import PLAYING_LINE

START = r"""
if (window.__stepRecorder) { window.__stepRecorder.disconnect(); }
window.__steps = [];
window.__events = [];
const app = () => document.querySelector("[data-testid='stApp']");
function snapshot() {
  const input = document.querySelector("[data-testid='stSlider'] input[type='range']");
  let slider = input ? input.value : null;
  let headline = null, headlineStale = false;
  const answers = [];
  for (const label of document.querySelectorAll("[data-testid='stMetricLabel']")) {
    answers.push([label.textContent, label.closest("[data-testid='stMetric']")]);
  }
  for (const line of document.querySelectorAll(".st-key-PLAYING_LINE")) {
    const m = line.textContent.match(/Step (\d+) of \d+/);
    if (m && slider === null) slider = m[1];
    answers.push([line.textContent, line]);
  }
  for (const [text, element] of answers) {
    const m = text.match(/Top class at step (\d+)/);
    if (!m) continue;
    const stale = !!(element && element.closest("[data-stale='true']"));
    if (headline === null || (headlineStale && !stale)) { headline = m[1]; headlineStale = stale; }
  }
  const a = app();
  return {slider: slider, headline: headline, headlineStale: headlineStale,
          state: a ? a.getAttribute('data-test-script-state') : null,
          stale: document.querySelectorAll("[data-stale='true']").length};
}
let last = "";
function record() {
  const s = snapshot();
  const key = JSON.stringify(s);
  if (key !== last) { last = key; s.t = performance.now(); window.__steps.push(s); }
}
// What is painted: the same snapshot at every animation frame (just before the browser paints it), kept when it
// changed. A state that the observer saw but no frame shows (two runs' deltas applied between two paints) was
// never on screen.
if (window.__frameRecorder) { cancelAnimationFrame(window.__frameRecorder); }
window.__frames = [];
let lastFrame = "";
function frame() {
  const s = snapshot();
  const key = JSON.stringify(s);
  if (key !== lastFrame) { lastFrame = key; s.t = performance.now(); window.__frames.push(s); }
  window.__frameRecorder = requestAnimationFrame(frame);
}
window.__frameRecorder = requestAnimationFrame(frame);
window.__stepRecorder = new MutationObserver(record);
window.__stepRecorder.observe(document.body, {subtree: true, childList: true, attributes: true,
                                              characterData: true});
for (const kind of ["keydown", "click"]) {
  document.addEventListener(kind, (e) => window.__events.push({kind: kind, t: performance.now()}), true);
}
record();
""".replace("PLAYING_LINE", PLAYING_LINE)
READ = "return [window.__steps || [], window.__events || [], performance.now()];"
READ_FRAMES = "return window.__frames || [];"


@dataclass
class Observation:
    t: float                     # ms, the page's performance.now()
    slider: str | None
    headline: str | None
    headline_stale: bool
    state: str | None            # "running" or "notRunning"
    stale: int                   # stale elements on the page

    @property
    def settled(self) -> bool:
        """The script has finished, nothing is stale, and the answer is the current run's."""
        return self.state == "notRunning" and self.stale == 0 and not self.headline_stale

    @property
    def disagrees(self) -> bool:
        """The slider and the answer show different steps (both present)."""
        return None not in (self.slider, self.headline) and self.slider != self.headline


def start(driver) -> None:
    """Start (or restart, clearing what was recorded) the recorder in the current page."""
    driver.execute_script(START)


def read(driver) -> tuple[list[Observation], list[tuple[str, float]], float]:
    """(observations, events as (kind, ms), the page's clock now in ms)."""
    steps, events, now = driver.execute_script(READ)
    return ([Observation(s["t"], s["slider"], s["headline"], s["headlineStale"], s["state"], s["stale"])
             for s in steps], [(e["kind"], e["t"]) for e in events], now)


def read_frames(driver) -> list[Observation]:
    """The painted frames since ``start``: the page's state at each animation frame where it changed."""
    return [Observation(s["t"], s["slider"], s["headline"], s["headlineStale"], s["state"], s["stale"])
            for s in driver.execute_script(READ_FRAMES)]


def distinct(values) -> list:
    """``values`` with consecutive repeats (and Nones) dropped: the sequence a viewer saw."""
    out = []
    for v in values:
        if v is not None and (not out or out[-1] != v):
            out.append(v)
    return out
