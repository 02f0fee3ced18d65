"""Take the README's screenshots of the app's main views with headless Chromium.

    python -m docs.screenshots            (from the repository root; needs /usr/bin/chromium)
    python -m docs.screenshots --image cat_0003.jpg     (another gallery image: any text that picks it in the list)

Starts `streamlit run app/main.py` on the shipped checkpoints, picks a gallery image, and
saves docs/app-*.png. Where a checkpoint has no metrics.json, the Dataset analysis shot shows
figures computed in the app on 200 test images (the page says so).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from testkit import chromium  # the headless Chromium the browser tests use
from testkit.streamlit_client import serve  # the server harness the browser tests use

ROOT = Path(__file__).resolve().parents[1]

DOCS = ROOT / "docs"
# The first visit's image on the default model (the refining one), a demo pick: dog at step 1, airplane from step 2.
IMAGE = "airplane_0003.jpg"
SETTLE = 4          # seconds for charts to finish drawing after the app is idle
WHAT_IF_PATCHES = (5, 6, 9, 10)     # the middle of a 4x4 token grid: where a CIFAR-10 object usually is


def browser(profile: str) -> webdriver.Chrome:
    return chromium.start(profile, window=(1400, 1900), extra_flags=("--hide-scrollbars",))


def idle(driver) -> bool:
    return not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")


def click(driver, text: str) -> None:
    """Click the radio option, button or page link whose visible text is ``text``."""
    xpath = (f"//label[.//p[normalize-space()='{text}']] | //button[.//p[normalize-space()='{text}']]"
             f" | //a[.//span[normalize-space()='{text}']]")
    element = WebDriverWait(driver, 60).until(EC.element_to_be_clickable((By.XPATH, xpath)))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()
    settle(driver)


def settle(driver, extra: float = SETTLE) -> None:
    time.sleep(1)
    WebDriverWait(driver, 300).until(idle)
    time.sleep(extra)


def shoot(driver, name: str) -> None:
    driver.execute_script("window.scrollTo(0, 0);")
    time.sleep(0.5)
    path = DOCS / f"app-{name}.png"
    driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def shoot_element(driver, element, name: str) -> None:
    """A view that opens lower on the page (an expander): only its own box, scrolled into view."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
    time.sleep(0.5)
    path = DOCS / f"app-{name}.png"
    element.screenshot(str(path))
    print(f"wrote {path.relative_to(ROOT)}")


def what_if(driver) -> None:
    """Open "What if", cover the four middle patches of the token grid and shoot the two traces side by side."""
    summary = driver.find_element(By.XPATH, "//details[.//p[starts-with(normalize-space(), 'What if')]]/summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
    summary.click()
    settle(driver)
    for patch in WHAT_IF_PATCHES:
        box = driver.find_element(By.CSS_SELECTOR, "[data-testid='stExpander'] [data-testid='stMultiSelect'] input")
        box.click()
        box.send_keys(f"patch {patch} (", Keys.ENTER)
        settle(driver, extra=1)
    settle(driver)
    expander = driver.find_element(By.XPATH, "//details[.//p[starts-with(normalize-space(), 'What if')]]")
    shoot_element(driver, expander, "what-if")
    summary = expander.find_element(By.TAG_NAME, "summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", summary)
    summary.click()         # closed again: the classroom shot that follows is the page a teacher opens
    settle(driver)


def main(image: str = IMAGE) -> None:
    with tempfile.TemporaryDirectory() as scratch, serve(Path(scratch) / "streamlit.log", timeout=120) as url:
        driver = browser(str(Path(scratch) / "profile"))
        try:
            driver.get(url)
            metric = (By.CSS_SELECTOR, "[data-testid='stMetric']")
            WebDriverWait(driver, 120).until(EC.presence_of_element_located(metric))
            settle(driver)
            box = driver.find_element(By.CSS_SELECTOR, "[data-testid='stSelectbox'] input")
            box.click()
            box.send_keys(image, Keys.ENTER)
            settle(driver)
            shoot(driver, "scrubber")
            for view, name in (("Evolving state", "state"), ("Attention", "attention")):
                click(driver, view)
                shoot(driver, name)
            click(driver, "Attribution")
            compute = driver.find_element(
                By.XPATH, "//button[.//p[starts-with(normalize-space(), 'Compute attributions')]]")
            compute.click()
            settle(driver, extra=8)
            shoot(driver, "attribution")
            click(driver, "Scrubber")
            what_if(driver)

            # Classroom mode on a projector's screen: image, answer, chart and slider at once.
            click(driver, "Scrubber")
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",       # the viewport itself, as projected
                                   {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
            click(driver, "Classroom mode")
            shoot(driver, "classroom")
            click(driver, "Classroom mode")
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            settle(driver)

            click(driver, "Dataset analysis")
            # Only a visible offer: the recompute buttons of evaluated models sit in closed expanders.
            buttons = driver.find_elements(By.XPATH, "//button[.//p[starts-with(normalize-space(), 'Compute on')]]")
            offers = [b for b in buttons if b.is_displayed()]
            if offers:
                offers[0].click()
                settle(driver, extra=6)
            shoot(driver, "accuracy")
            for section, name in (("Accuracy vs cost", "cost"), ("Per class", "per-class"),
                                  ("Browse images", "error-table"), ("Compare with…", "compare"),
                                  ("Halting", "halting"), ("Galleries", "galleries"),
                                  ("Answers over steps", "projector")):
                click(driver, section)
                shoot(driver, name)

            click(driver, "How ViTRM works")
            shoot(driver, "how-it-works")
        finally:
            driver.quit()


if __name__ == "__main__":
    if not os.path.exists(chromium.CHROMIUM):
        sys.exit("needs Debian's chromium: apt-get install chromium chromium-driver")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=IMAGE, help="the gallery entry to show, as the list shows it")
    main(parser.parse_args().image)
