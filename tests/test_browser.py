"""The app in a real browser: `streamlit run app/main.py` driven by headless Chromium (Selenium).

Uploads a PNG through the file uploader, moves the slider with the keyboard, checks that the
predicted class (as ``model.trace`` computes it here) appears, plays the steps, and saves a
screenshot. Skipped, with the reason, where Debian's chromium and chromedriver are absent
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them when it can).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vitrm
from vitrm import ViTRM, ViTRMConfig

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TINY = ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1)
WAIT = 60
# The element with the slider role: an <input type="range"> (implicit role) in current Streamlit.
SLIDER = "[data-testid='stSlider'] [role='slider'], [data-testid='stSlider'] input[type='range']"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason=f"{CHROMIUM} or {CHROMEDRIVER} is absent (apt-get install chromium chromium-driver)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-checkpoints")
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), root / "vitrm-browser")
    return root / "vitrm-browser"


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    port = free_port()
    env = dict(os.environ, VITRM_CHECKPOINTS=str(checkpoint.parent))
    log = open(tmp_path_factory.mktemp("server") / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1800",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def expected_top(checkpoint: Path, image: Path, step: int) -> str:
    model = vitrm.load(checkpoint)
    probs = model.trace(model.preprocess(vitrm.load_image(image)), steps=step).probs[-1, 0]
    return model.config.class_names[int(probs.argmax())]


def metric_value(driver, label: str, timeout: float = WAIT) -> str:
    """The value of the st.metric whose label is ``label``, once it is on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    xpath = (f"//*[@data-testid='stMetric'][.//*[@data-testid='stMetricLabel']//*[normalize-space()='{label}']]"
             "//*[@data-testid='stMetricValue']")
    return WebDriverWait(driver, timeout).until(EC.visibility_of_element_located((By.XPATH, xpath))).text


def test_upload_a_png_scrub_the_steps_and_play_them(server, browser, checkpoint, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "upload.png"
    pixels = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)

    browser.get(server)
    wait = WebDriverWait(browser, WAIT)
    wait.until(EC.element_to_be_clickable((By.XPATH, "//label[.//p[normalize-space()='Upload']]"))).click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type='file']"))).send_keys(str(image))

    trained = TINY.trained_steps
    assert metric_value(browser, f"Top class at step {trained}") == expected_top(checkpoint, image, trained)
    assert "upload.png" in browser.page_source

    slider = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, SLIDER)))
    browser.execute_script("arguments[0].focus();", slider)
    slider.send_keys(Keys.ARROW_RIGHT)
    assert metric_value(browser, f"Top class at step {trained + 1}") == expected_top(checkpoint, image, trained + 1)
    browser.save_screenshot(str(tmp_path / "scrubber.png"))
    assert (tmp_path / "scrubber.png").stat().st_size > 10_000

    # Play runs the steps on its own until the last one (N = 2x the trained count by default).
    last = 2 * trained
    browser.find_element(By.XPATH, "//label[.//p[contains(normalize-space(), 'Play')]]").click()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.CSS_SELECTOR, SLIDER).get_attribute("value") == str(last))
    assert metric_value(browser, f"Top class at step {last}") == expected_top(checkpoint, image, last)
