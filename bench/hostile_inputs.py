"""What hostile input costs: every odd file of the test corpus, a decompression bomb, and
malicious checkpoint configs, each in a fresh process so that one measurement cannot hide another.

    .venv/bin/python -m bench.hostile_inputs              # the files and configs below
    .venv/bin/python -m bench.hostile_inputs --fairness   # a long trace beside another session's page
    .venv/bin/python -m bench.hostile_inputs --many-classes   # the first page at 10 and 100,000 classes
    .venv/bin/python -m bench.hostile_inputs --many-classes-browser   # the same in headless Chromium

Prints, per case: the outcome (the message a user sees), the wall time to reach it, and the
process's peak resident memory (VmHWM, torch included) next to what it was before the case ran.
The corpus is ``testkit/oddfiles.py``, the same files the test suite feeds to the app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from testkit.oddfiles import odd_files

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: import torch and vitrm first, then measure only the case.
HARNESS = textwrap.dedent("""
    import json, sys, time
    from testkit.oddfiles import odd_files, peak_rss_mb, rss_mb
    import vitrm
    before = peak_rss_mb()
    start = time.perf_counter()
    {body}
    print(json.dumps({{"outcome": outcome, "seconds": time.perf_counter() - start,
                      "peak_before_mb": before, "peak_mb": peak_rss_mb()}}))
""")

IMAGE_CASE = """
data, _ = odd_files()[{name!r}]
try:
    image = vitrm.load_image(data)
    outcome = f"loaded {{image.size[0]}}x{{image.size[1]}} RGB"
except vitrm.InvalidImageError as e:
    outcome = str(e)
"""

CONFIG_CASE = """
import json, tempfile, pathlib
from vitrm import ViTRM, ViTRMConfig
path = pathlib.Path(tempfile.mkdtemp())
vitrm.save(ViTRM(ViTRMConfig(dim=16, heads=2, layers=1)), path)
raw = json.loads((path / "config.json").read_text())
raw.update({changes})
(path / "config.json").write_text(json.dumps(raw))
try:
    vitrm.load(path)
    outcome = "loaded"
except vitrm.CheckpointError as e:
    outcome = str(e).split(": ", 1)[-1]
"""

CONFIGS = {
    "10^12 parameters (dim 2^17, 64 layers)": dict(dim=2**17, heads=64, layers=64),
    "3x10^11 parameters, every field in range": dict(dim=4096, heads=64, layers=512, mlp_ratio=16.0),
    "negative size": dict(dim=-64),
    "non-integer size": dict(layers=2.5),
    "wrong type": dict(class_names="cat"),
    "extra key": dict(payload="__import__('os').system('id')"),
    "the probe's compute bomb (512 layers, 64 latent updates, N=1,024, 4x4 image)": dict(
        image_size=4, patch_size=1, dim=4, heads=1, layers=512, latent_updates=64, trained_steps=1024,
        combine="concat"),
}

# The longest trace the work budget lets a checkpoint ask of the app: 16,384 layer applications at 4N (the cap),
# so 8,192 on its default page (2N).
AT_THE_CAP = dict(dim=16, heads=2, layers=8, latent_updates=3, trained_steps=128)


def run(body: str) -> dict:
    code = HARNESS.format(body=textwrap.dedent(body).strip())
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        return {"outcome": f"CRASHED: {done.stderr.strip().splitlines()[-1]}", "seconds": float("nan"),
                "peak_before_mb": float("nan"), "peak_mb": float("nan")}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}\n")
    print("| case | outcome | time | peak memory (before the case) |\n|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['outcome'][:90]} | {1000 * r['seconds']:.1f} ms | "
              f"{r['peak_mb']:.0f} MB ({r['peak_before_mb']:.0f} MB) |")


def fairness(repeats: int = 3) -> None:
    """Another session's default page (the flagship at 2N) asked for 0.2 s after a trace at the work cap began:
    its wait with every request in one first-come lane (as before) and with the quick and long lanes."""
    import threading
    import time

    import torch

    import vitrm
    torch.set_num_threads(1)                      # as the app runs
    flagship = vitrm.load(ROOT / "checkpoints" / "vitrm-cifar10")
    long = vitrm.ViTRM(vitrm.ViTRMConfig(**AT_THE_CAP)).eval()
    image = torch.zeros(1, 3, 32, 32)
    alone = []
    for _ in range(repeats):
        start = time.perf_counter()
        flagship.trace(image, vitrm.steps.default_steps(flagship.config))
        alone.append(time.perf_counter() - start)
    print(f"\nthe flagship's default trace alone: median {sorted(alone)[repeats // 2]:.3f} s")
    print("| lanes | the page's wait, each run | the long trace |\n|---|---|---|")
    for lanes in (1, 2):
        waits: list[float] = []
        longs: list[float] = []
        for _ in range(repeats):
            batcher = vitrm.TraceBatcher(lanes=lanes)

            def run_long(batcher=batcher, longs=longs, started=time.perf_counter()):
                batcher.trace(long, image, vitrm.steps.default_steps(long.config))
                longs.append(time.perf_counter() - started)
            held = threading.Thread(target=run_long)
            held.start()
            time.sleep(0.2)
            start = time.perf_counter()
            batcher.trace(flagship, image, vitrm.steps.default_steps(flagship.config))
            waits.append(time.perf_counter() - start)
            held.join()
        print(f"| {lanes} | {', '.join(f'{w:.2f} s' for w in waits)} | {', '.join(f'{t:.1f} s' for t in longs)} |")
    print("Produced by `.venv/bin/python -m bench.hostile_inputs --fairness`.")


MANY_CLASSES = """
import json, os, pathlib, tempfile, time
import torch
from streamlit.testing.v1 import AppTest
from vitrm import ViTRM, ViTRMConfig
n = {n}
root = pathlib.Path(tempfile.mkdtemp()) / "checkpoints"
torch.manual_seed(0)
vitrm.save(ViTRM(ViTRMConfig(dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, num_classes=n,
                             class_names=tuple(f"class{{i:06d}}" for i in range(n)))), root / "many")
os.environ["VITRM_CHECKPOINTS"] = str(root)
at = AppTest.from_file({app!r}, default_timeout=900)
start = time.perf_counter()
at.run()
first = time.perf_counter() - start
biggest = max(len(c.proto.spec) for c in at.get("plotly_chart"))
outcome = f"first page {{first:.1f}} s, largest chart {{biggest:,}} bytes, {{len(at.exception)}} exceptions"
"""


def many_classes() -> None:
    """The Explore page's first run (AppTest, a fresh process each) for a model of 10 and of 100,000 classes."""
    rows = [(f"{n:,} classes", run(MANY_CLASSES.format(n=n, app=str(ROOT / "app" / "main.py"))))
            for n in (10, 100_000)]
    table("The Explore page's first run, cold, per class count", rows)
    print("Produced by `.venv/bin/python -m bench.hostile_inputs --many-classes`.")


SLIDER = "[data-testid='stSlider'] input[type='range']"
HEADLINE = """return [...document.querySelectorAll("[data-testid='stMetricLabel']")]
    .filter(e => !e.closest("[data-stale='true']")).map(e => e.textContent).find(t => /Top class at step/.test(t))
    ?? null;"""


def _visit(url: str, profile: Path) -> tuple[float, float, dict]:
    """A new browser session on ``url``: (seconds to the first answer and every chart drawn, seconds from a step key
    to the next step's answer, the page's weight)."""
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from bench.browser_speed import browser, until
    from testkit import chromium, page_weight

    driver = browser(profile)
    try:
        page_weight.count_websocket_bytes(driver)
        start = time.perf_counter()
        driver.get(url)
        until(lambda: chromium.drawn(driver, 4), 600, "the page drawn", poll=0.1)
        drawn = time.perf_counter() - start
        weight = page_weight.weight(driver)
        slider = driver.find_element(By.CSS_SELECTOR, SLIDER)
        step = int(slider.get_attribute("value"))
        wanted = f"Top class at step {step - 1 if step > 1 else step + 1}"
        driver.execute_script("arguments[0].focus();", slider)
        start = time.perf_counter()
        slider.send_keys(Keys.ARROW_LEFT if step > 1 else Keys.ARROW_RIGHT)
        until(lambda: driver.execute_script(HEADLINE) == wanted and chromium.drawn(driver, 4), 120,
              "the next step shown", poll=0.05)
        return drawn, time.perf_counter() - start, weight
    finally:
        driver.quit()


def many_classes_browser(counts=(10, 100_000)) -> None:
    """The Explore page in headless Chromium, per class count, on a fresh server: the time from asking for the page
    to its answer and every chart drawn, for the first visitor (the server cold: imports, model load, trace) and
    for a second one (a new session on the warm server); a step key's time to the new step's answer; and the
    page's weight (tests/test_browser_hostile.py asserts bounds on it)."""
    import tempfile

    import torch

    import vitrm
    from testkit.streamlit_client import serve

    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "checkpoints"
            torch.manual_seed(0)
            vitrm.save(vitrm.ViTRM(vitrm.ViTRMConfig(
                dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, num_classes=n,
                class_names=tuple(f"class{i:06d}" for i in range(n)))), root / "many")
            with serve(Path(tmp) / "streamlit.log", env={"VITRM_CHECKPOINTS": str(root), "OMP_NUM_THREADS": "1"},
                       timeout=300) as url:
                for visit in ("first visitor", "second visitor"):
                    rows.append((f"{n:,}", visit, *_visit(url, Path(tmp) / f"profile-{visit[0]}")))
                    print(f"{n:,} classes, {visit}: drawn in {rows[-1][2]:.1f} s, step key {rows[-1][3]:.2f} s",
                          flush=True)
    print(f"\nThe Explore page in headless Chromium, per class count (load average {os.getloadavg()[0]:.1f} "
          "at the end)\n")
    print("| classes | visit | to the answer and every chart drawn | step key to the next step's answer | websocket "
          "bytes (messages) | largest chart's JSON | elements | HTML |\n|---|---|---|---|---|---|---|---|")
    for n, visit, drawn, moved, w in rows:
        print(f"| {n} | {visit} | {drawn:.1f} s | {moved:.2f} s | {w['websocket_bytes']:,} ({w['websocket_messages']}) "
              f"| {max(w['chart_json']):,} B | {w['elements']:,} | {w['html_chars']:,} chars |")
    print("Produced by `.venv/bin/python -m bench.hostile_inputs --many-classes-browser`.")


def main() -> None:
    if "--many-classes-browser" in sys.argv[1:]:
        many_classes_browser()
        return
    if "--fairness" in sys.argv[1:]:
        fairness()
        return
    if "--many-classes" in sys.argv[1:]:
        many_classes()
        return
    images = [(name, run(IMAGE_CASE.format(name=name))) for name in odd_files()]
    configs = [(name, run(CONFIG_CASE.format(changes=repr(changes)))) for name, changes in CONFIGS.items()]
    table(f"load_image on the {len(images)} files of testkit/oddfiles.py", images)
    table("vitrm.load on a checkpoint whose config.json was tampered with", configs)
    crashed = [n for n, r in images + configs if r["outcome"].startswith("CRASHED")]
    print(f"\n{len(crashed)} crashes" + (f": {crashed}" if crashed else ""))
    print("Produced by `.venv/bin/python -m bench.hostile_inputs`; memory is VmHWM of a fresh process.")


if __name__ == "__main__":
    main()
