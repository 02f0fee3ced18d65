"""Headless Chromium as the tests, the benches and the docs' scripts drive it: one way to start it, and one test of
"the first page is drawn".

``start(profile, ...)`` launches Debian's Chromium (``CHROMIUM``) through its chromedriver (``CHROMEDRIVER``) with
``FLAGS``, a window of the size asked for and a profile directory of the caller's; what differs from one caller to
the next (the window, extra flags, webdriver's timeouts, capabilities) is an argument. ``available()`` says whether
both are installed (``apt-get install chromium chromium-driver``).

``drawn(driver, charts)`` is true once the first page is drawn: the answer shown, at least ``charts`` Plotly charts
drawn and none stale, the script finished and Streamlit's status widget gone. ``DRAWN`` is that check as a
JavaScript function of ``charts``, for a script that runs it in the page at every change (bench/browser_speed.py).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# Since Chromium 132 there is one headless mode: "--headless" is what "--headless=new" asked for before. No GPU, no
# sync, updates or other traffic of the browser's own (loopback only), and shared memory in /tmp, not /dev/shm, which
# a container keeps small enough for a large page to crash the renderer.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")

# The first page is drawn: the answer shown, each of the page's charts (at least ``charts`` of them) drawn by Plotly
# (its main svg there) and none stale, the script finished and Streamlit's status widget gone.
DRAWN = """(charts) => {
  const drawn = [...document.querySelectorAll("[data-testid='stPlotlyChart']")]
      .filter(c => !c.closest("[data-stale='true']") && c.querySelector('.main-svg'));
  return [...document.querySelectorAll("[data-testid='stMetricLabel']")]
      .some(e => /Top class at step/.test(e.textContent))
    && drawn.length >= charts
    && !document.querySelector("[data-testid='stStatusWidget']")
    && document.querySelector("[data-testid='stApp']")?.getAttribute('data-test-script-state') === 'notRunning';
}"""


def version() -> str:
    """The installed Chromium's version number, for a bench's footer, or "?". Debian's build prints
    "Chromium 156.0.8078.129 built on Debian GNU/Linux 12 (bookworm)": the number is the first dotted one."""
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    found = re.search(r"\d+(?:\.\d+)+", out)
    return found.group() if found else "?"


def available() -> bool:
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def start(profile: Path | str, window: tuple[int, int] | None = (1400, 1800), extra_flags: tuple[str, ...] = (),
          page_load_timeout: float | None = None, script_timeout: float | None = None,
          capabilities: dict | None = None):
    """A new headless Chromium under chromedriver, with its profile in ``profile``; the caller quits it.

    ``window``: the window's size in pixels (None: Chromium's own). A timeout left None keeps webdriver's (300 s for a
    page load, 30 s for a script, too short for a tiny script on a busy machine: a caller that waits in the page
    sets its own)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    sized = () if window is None else (f"--window-size={window[0]},{window[1]}",)
    for flag in (*FLAGS, *sized, *extra_flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    for name, value in (capabilities or {}).items():
        options.set_capability(name, value)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    if page_load_timeout is not None:
        driver.set_page_load_timeout(page_load_timeout)
    if script_timeout is not None:
        driver.set_script_timeout(script_timeout)
    return driver


def drawn(driver, charts: int) -> bool:
    return bool(driver.execute_script(f"return ({DRAWN})(arguments[0]);", charts))
