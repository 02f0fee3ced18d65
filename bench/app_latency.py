"""App latency, measured with streamlit.testing.v1.AppTest on the flagship architecture.

    .venv/bin/python -m bench.app_latency [--checkpoint DIR] [--uploads 10] [--cold-starts 3] [--no-browser]
    .venv/bin/python -m bench.app_latency --quick     # 1 cold start, 3 uploads, no browser

Reports, on this machine, in one run:

* cold start to first render: a fresh Python process that imports the app, loads the models,
  traces the default gallery image and draws the Explore page (the scrubber view), timed
  --cold-starts times; and, where Debian's chromium is installed, once in a real browser:
  from launching `streamlit run` (Chromium already up) until the page is drawn;
* upload to full render of the scrubber view: a new image (never seen, so nothing is cached)
  set on the uploader, through decoding, the trace to 4x the trained steps and every chart;
* a slider move: the same page redrawn from the cached trace (no model work);
* where Debian's chromium is installed, upload to full render in a real browser: a
  `streamlit run` server and headless Chromium, from handing the file to the uploader's
  <input type=file> until the page shows the new image's prediction, every chart is drawn and
  the app is idle again.

AppTest times the script run on the server side; the browser figure adds the websocket and
the drawing of the charts. Without --checkpoint it uses checkpoints/vitrm-cifar10 when it has
weights, else an untrained model of the same architecture (bench/common.py): the compute is
the same. The load average is printed, because a training run in the background
shares the two cores.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from testkit import chromium

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app" / "main.py"          # the server, for `streamlit run`
SCRIPT = ROOT / "app" / "main.py"      # the script each visit runs, for AppTest

# Runs in the page: from now until the new image's caption is shown, at least 4 plotly charts are
# drawn and Streamlit's "running" indicator is gone (checked every animation frame).
WATCH = """
const caption = arguments[0];
const start = performance.now();
window.__drawnAfter = null;
function check() {
  const shown = document.body.textContent.includes(caption);
  const charts = document.querySelectorAll('.js-plotly-plot .main-svg').length;
  const running = document.querySelector("[data-testid='stStatusWidget']");
  if (shown && charts >= 4 && !running) { window.__drawnAfter = performance.now() - start; return; }
  requestAnimationFrame(check);
}
requestAnimationFrame(check);
"""
COLD_START = """
import time; start = time.perf_counter()
import torch; torch.set_num_threads(1)
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=300)
at.run()
assert not at.exception, [e.message for e in at.exception]
assert any(m.label.startswith("Top class at step") for m in at.metric)
print(time.perf_counter() - start)
"""


def flagship_checkpoint(tmp: Path) -> Path:
    """The flagship checkpoint when it has weights, else an untrained one of its architecture."""
    import torch

    import vitrm
    from bench.common import CHECKPOINT, flagship_config
    if (CHECKPOINT / "model.safetensors").is_file() and (CHECKPOINT / "config.json").is_file():
        return CHECKPOINT
    torch.manual_seed(0)
    return vitrm.save(vitrm.build_model(flagship_config()[0]), tmp / "vitrm-untrained")


def photo(seed: int) -> bytes:
    """A 640x480 PNG of smooth random colour, like a small phone photo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC).save(buf, format="PNG")
    return buf.getvalue()


def timed_run(at) -> float:
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    assert not at.exception, [e.message for e in at.exception]
    return seconds


def browser_uploads(checkpoints_root: Path, count: int, tmp: Path) -> tuple[float, list[float]]:
    """(cold start, uploads) in seconds, in headless Chromium.

    Cold start: from launching ``streamlit run`` (Chromium already up) until the first page
    shows the default image's prediction with its charts drawn and the app idle. Uploads:
    from handing each new PNG to the uploader until the scrubber view is fully drawn; each
    file is added to the ones before it, and the app explores the newest upload.
    """
    import socket
    import urllib.request

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver, server = None, None
    try:
        driver = chromium.start(tmp / "chromium-profile", window=(1400, 1800))
        wait = WebDriverWait(driver, 120)

        def idle(d):
            return not d.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")

        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                                   "--server.address", "127.0.0.1", "--server.headless", "true"],
                                  cwd=ROOT, env=dict(os.environ, VITRM_CHECKPOINTS=str(checkpoints_root)),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(1200):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        driver.get(url)
        WebDriverWait(driver, 300, poll_frequency=0.1).until(lambda d: chromium.drawn(d, 4))
        cold = time.perf_counter() - start
        upload = (By.XPATH, "//label[.//p[normalize-space()='Upload']]")
        file_input = (By.CSS_SELECTOR, "input[type='file']")
        for _ in range(3):              # a click that lands while the first run is drawing can be lost
            wait.until(EC.element_to_be_clickable(upload)).click()
            try:
                WebDriverWait(driver, 15).until(EC.presence_of_element_located(file_input))
                break
            except TimeoutException:
                continue

        seconds = []
        for i in range(count + 1):             # the first upload warms up imports and is not counted
            path = tmp / f"browser-{i}.png"
            path.write_bytes(photo(20_000 + i))
            wait.until(idle)
            uploader = wait.until(EC.presence_of_element_located(file_input))
            # The page times itself: polling from here would compete with the renderer for the CPU.
            driver.execute_script(WATCH, f"{path.name}: original")
            uploader.send_keys(str(path))
            WebDriverWait(driver, 120, poll_frequency=0.25).until(
                lambda d: d.execute_script("return window.__drawnAfter"))
            if i:
                seconds.append(driver.execute_script("return window.__drawnAfter") / 1000)
        return cold, seconds
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.terminate()
            server.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true", help="skip the real-browser measurement")
    parser.add_argument("--cold-starts", type=int, default=3, help="fresh processes timed to first render")
    parser.add_argument("--quick", action="store_true", help="1 cold start, 3 uploads, no browser: a quick check")
    args = parser.parse_args()
    if args.quick:
        args.cold_starts, args.uploads, args.no_browser = 1, 3, True

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or flagship_checkpoint(Path(tmp))
        os.environ["VITRM_CHECKPOINTS"] = str(Path(checkpoint).resolve().parent)
        print(f"checkpoint: {checkpoint}  load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"python {sys.version.split()[0]}, torch {version('torch')}, streamlit {version('streamlit')}; "
              f"the app's torch runs 1 thread")

        cold = [float(subprocess.run([sys.executable, "-c", COLD_START.format(app=str(SCRIPT))], check=True,
                                     capture_output=True, text=True, cwd=ROOT, env=os.environ).stdout.split()[-1])
                for _ in range(args.cold_starts)]

        import torch
        torch.set_num_threads(1)      # one core: this machine has two and a training run may hold the other
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(SCRIPT), default_timeout=300)
        timed_run(at)
        at.radio(key="source").set_value("Upload")
        timed_run(at)
        at.file_uploader[0].set_value(("warm-up.png", photo(10_000), "image/png"))
        timed_run(at)                 # imports and first-use costs, not counted

        uploads, slider = [], []
        step_key = next(s.key for s in at.slider)
        for i in range(args.uploads):
            at.file_uploader[0].set_value((f"photo-{i}.png", photo(i), "image/png"))
            uploads.append(timed_run(at))
            assert any(m.label.startswith("Top class at step") for m in at.metric)
            at.slider(key=step_key).set_value(1 + i % at.slider(key=step_key).max)
            slider.append(timed_run(at))
        browser_cold, browser = None, None
        if not args.no_browser and chromium.available():
            browser_cold, browser = browser_uploads(Path(checkpoint).resolve().parent, args.uploads, Path(tmp))

    def describe(xs):
        xs = sorted(xs)
        return f"median {statistics.median(xs):.3f} s, max {xs[-1]:.3f} s (n={len(xs)})"

    print(f"cold start to first render (fresh process, AppTest): {describe(cold)}")
    if browser_cold is not None:
        print(f"cold start to first render in headless Chromium (streamlit run until drawn): {browser_cold:.3f} s")
    print(f"upload to full render of the scrubber view: {describe(uploads)}")
    print(f"slider move (cached trace, no model work):  {describe(slider)}")
    if browser:
        print(f"upload to full render in headless Chromium: {describe(browser)}")
    else:
        print("upload to full render in headless Chromium: not measured (no /usr/bin/chromium, or --no-browser)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
