"""The app in a real browser: `streamlit run app/main.py` driven by headless Chromium (Selenium).

Uploads a PNG through the file uploader, moves the slider with the keyboard, checks that the
predicted class (as ``model.trace`` computes it here) appears, plays the steps, and saves a
screenshot. Skipped, with the reason, where Debian's chromium and chromedriver are absent
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them when it can).

Streamlit redraws a page in place: while a script run is in progress, the previous run's elements
stay on the page (marked ``data-stale="true"``) until the new run has replaced them, and a widget
touched in the middle of a run may be redrawn by that run. So the test reads only elements that
are not stale, and before each interaction it waits for the page to settle (the script has
finished and nothing is stale). What Play shows is recorded inside the page by a MutationObserver
(testkit/step_recorder.py), so no step it shows can slip between two polls. On a failure it saves
a screenshot, the page source, the browser's console and the server's log, and names them in the
error.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vitrm
from testkit import chromium, step_recorder
from testkit.streamlit_client import serve
from vitrm import ViTRM, ViTRMConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1)
# Generous, for a 2-core machine that also runs a training job: the first page includes the server's
# imports (torch, plotly) and the first trace; later waits are for a script run of well under a second.
FIRST_WAIT = 300
WAIT = 60
APP = "[data-testid='stApp']"
SLIDER = "[data-testid='stSlider'] input[type='range']"
PLAY = "//button[.//p[contains(normalize-space(), 'Play')]]"
NOT_STALE = "not(ancestor-or-self::*[@data-stale='true'])"

pytestmark = pytest.mark.skipif(
    not chromium.available(),
    reason=f"{chromium.CHROMIUM} or {chromium.CHROMEDRIVER} is absent (apt-get install chromium chromium-driver)")


@dataclass
class Server:
    url: str
    log: Path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-checkpoints")
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), root / "vitrm-browser")
    return root / "vitrm-browser"


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    with serve(log_path, env={"VITRM_CHECKPOINTS": str(checkpoint.parent)}, timeout=FIRST_WAIT) as url:
        yield Server(url, log_path)


@pytest.fixture
def browser(tmp_path):
    # webdriver's 30 s script timeout is too short for a tiny script on a busy machine; the browser's console log is
    # kept for evidence() and the tests that read its errors
    driver = chromium.start(tmp_path / "chromium-profile", window=(1400, 1800), page_load_timeout=FIRST_WAIT,
                            script_timeout=WAIT, capabilities={"goog:loggingPrefs": {"browser": "ALL"}})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def expected_top(checkpoint: Path, image: Path, step: int) -> str:
    model = vitrm.load(checkpoint)
    probs = model.trace(model.preprocess(vitrm.load_image(image)), steps=step).probs[-1, 0]
    return model.config.class_names[int(probs.argmax())]


# --------------------------------------------------------------------------- waiting for Streamlit

def wait(driver, timeout: float = WAIT):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))


def page_state(driver) -> tuple[str | None, int]:
    """(the script's run state as the page shows it, how many elements are stale)."""
    return tuple(driver.execute_script(
        f"const app = document.querySelector(\"{APP}\");"
        "return [app && app.getAttribute('data-test-script-state'),"
        "        document.querySelectorAll(\"[data-stale='true']\").length];"))


def settle(driver, timeout: float = WAIT, quiet: float = 0.5) -> None:
    """Wait until the script run has finished and nothing is stale, for ``quiet`` seconds in a row."""
    since = [None]

    def settled(d) -> bool:
        state, stale = page_state(d)
        if state != "notRunning" or stale:
            since[0] = None
            return False
        since[0] = since[0] or time.monotonic()
        return time.monotonic() - since[0] >= quiet
    wait(driver, timeout).until(settled, message=f"the page did not settle within {timeout} s")


def metric_value(driver, label: str, timeout: float = WAIT) -> str:
    """The value of the current (not stale) st.metric whose label is ``label``, once it is on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    xpath = (f"//*[@data-testid='stMetric'][{NOT_STALE}]"
             f"[.//*[@data-testid='stMetricLabel']//*[normalize-space()='{label}']]//*[@data-testid='stMetricValue']")
    return wait(driver, timeout).until(EC.visibility_of_element_located((By.XPATH, xpath)),
                                       message=f"no metric '{label}' within {timeout} s").text


def slider_value(driver) -> str | None:
    """The slider's value, read in one script call: Streamlit may replace the element between a lookup
    and a read (during Play it does so at every step), which a two-call read turns into a stale error."""
    return driver.execute_script(
        "const s = document.querySelector(arguments[0]);"
        "return s ? s.value : null;", SLIDER)


def press_on_slider(driver, key: str, expected: str) -> None:
    """Settle, focus the slider, press ``key``, and wait until the slider shows ``expected``."""
    from selenium.webdriver.common.by import By
    settle(driver)
    slider = driver.find_element(By.CSS_SELECTOR, SLIDER)
    driver.execute_script("arguments[0].focus();", slider)
    slider.send_keys(key)
    wait(driver).until(lambda d: slider_value(d) == expected,
                       message=f"the slider did not move to {expected}")


@contextmanager
def evidence(driver, server: Server, folder: Path):
    """On any failure: save what the browser and the server saw, and name it in the error."""
    try:
        yield
    except BaseException as error:
        folder.mkdir(parents=True, exist_ok=True)
        notes = [f"browser evidence in {folder}"]
        try:
            driver.save_screenshot(str(folder / "failure.png"))
            (folder / "page.html").write_text(driver.page_source)
            console = driver.get_log("browser")
            (folder / "console.txt").write_text("\n".join(f"{e['level']} {e['message']}" for e in console))
            seen, events, _ = step_recorder.read(driver)
            if seen:
                (folder / "steps.txt").write_text("\n".join(map(repr, seen + events)))
                notes.append(f"recorded (slider, headline): {[(o.slider, o.headline) for o in seen][-40:]}")
            notes.append(f"page state (script run state, stale elements): {page_state(driver)}; "
                         f"slider value: {slider_value(driver)}")
            notes += [f"console: {e['level']} {e['message'][:300]}" for e in console if e["level"] == "SEVERE"][-5:]
        except Exception as e:  # the browser itself may be what failed
            notes.append(f"could not read the browser: {e!r}")
        if server.log.exists():
            shutil.copy(server.log, folder / "streamlit.log")
            notes.append("server log (last 2000 characters):\n" + server.log.read_text()[-2000:])
        error.add_note("\n".join(notes))
        raise


# --------------------------------------------------------------------------- the test

def test_upload_a_png_scrub_the_steps_and_play_them(server, browser, checkpoint, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC

    image = tmp_path / "upload.png"
    pixels = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    trained, last = TINY.trained_steps, 2 * TINY.trained_steps     # N is 2x the trained count by default

    with evidence(browser, server, tmp_path / "evidence"):
        browser.get(server.url)
        upload = (By.XPATH, "//label[.//p[normalize-space()='Upload']]")
        wait(browser, FIRST_WAIT).until(EC.element_to_be_clickable(upload))
        settle(browser, FIRST_WAIT)
        browser.find_element(*upload).click()
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type='file']")))
        settle(browser)
        browser.find_element(By.CSS_SELECTOR, "input[type='file']").send_keys(str(image))

        # The upload is classified: its row in the uploads table, then the scrubber at the trained step.
        wait(browser).until(EC.presence_of_element_located(
            (By.XPATH, f"//*[@data-testid='stTable'][{NOT_STALE}]//td[normalize-space()='upload.png']")),
            message="the uploaded file's row did not appear")
        assert metric_value(browser, f"Top class at step {trained}") == expected_top(checkpoint, image, trained)
        settle(browser)
        assert slider_value(browser) == str(trained)

        press_on_slider(browser, Keys.ARROW_RIGHT, str(trained + 1))
        assert metric_value(browser, f"Top class at step {trained + 1}") == expected_top(checkpoint, image, trained + 1)
        settle(browser)
        browser.save_screenshot(str(tmp_path / "scrubber.png"))
        assert (tmp_path / "scrubber.png").stat().st_size > 10_000

        # Play from step 1: the steps go by on their own, shown with the answer as one line (the recorder reads
        # it as the slider while there is none), and Play stops at the last one with the slider back there.
        press_on_slider(browser, Keys.HOME, "1")
        assert metric_value(browser, "Top class at step 1") == expected_top(checkpoint, image, 1)
        settle(browser)
        step_recorder.start(browser)        # records every change of the page, inside the page
        browser.find_element(By.XPATH, PLAY).click()
        wait(browser).until(lambda d: slider_value(d) == str(last),
                            message=f"Play did not reach step {last}")
        settle(browser, quiet=2.0)        # playing has stopped: no more runs, even after a tick's time
        seen, _, _ = step_recorder.read(browser)
        steps = [str(s) for s in range(1, last + 1)]
        assert step_recorder.distinct(o.slider for o in seen) == steps, \
            f"Play should show the steps one at a time: {[o.slider for o in seen]}"
        assert step_recorder.distinct(o.headline for o in seen if not o.headline_stale) == steps, \
            f"the answer should follow one step at a time: {[o.headline for o in seen]}"
        # Not even between two messages of a run: while playing, the step and the answer are one element.
        stale_states = [o for o in seen if o.disagrees]
        assert not stale_states, f"the step and the answer showed different steps: {stale_states}"
        assert slider_value(browser) == str(last)
        assert browser.find_elements(By.XPATH, PLAY), "after the last step the button offers Play again, not Stop"
        assert metric_value(browser, f"Top class at step {last}") == expected_top(checkpoint, image, last)

        # Offline: nothing failed to load (an icon fetched from the internet would show up here).
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
