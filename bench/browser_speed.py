"""The app's speed as a user feels it, in a real browser: issue #12's targets, one table.

    python -m bench.browser_speed [--checkpoint DIR | --shipped] [--moves 20] [--plays 3] [--sessions 20]
                                  [--per-session 3]
    python -m bench.browser_speed --cold-starts 5 [--against COMMIT] [--checkpoint DIR | --shipped]

Starts the real `streamlit run app/main.py` on 127.0.0.1 and drives headless Chromium
(/usr/bin/chromium, Selenium) on the flagship checkpoint (checkpoints/vitrm-cifar10 when it has
weights, else an untrained model of its architecture: the compute is the same), on the first
visit's page (the default gallery image, the scrubber view). It measures, in this order:

* **cold start**: from launching the server (Chromium already up, the CPUs idle) until the first page is
  drawn: the answer's metric shown, each of its 4 Plotly charts drawn (the floor's 2), the script finished
  and Streamlit's status widget gone (checked in the page, at each animation frame after a change);
* **slider move to a settled page**: ``--moves`` arrow-key presses on the step slider, up and down
  its range. Timed inside the page (testkit/step_recorder.py): from the keydown to the first DOM
  change after which the page is *settled*: the script's run state is notRunning, no element is
  stale, and the answer's headline ("Top class at step K", not stale) and the slider both show
  the new step. Each press waits for the previous page to be settled for 0.3 s;
* **Play from step 1 to N**, ``--plays`` times: the click on Play to the headline's showing step N,
  against the nominal pace ((N - 1) x the play interval); the steps the headline showed, in order
  (any missing is a skipped frame); and every recorded change of the page where the step shown (the
  slider, or while playing the playing line that takes its place) and the headline showed different
  steps (a stale state), whether or not a run was in progress, and which of those were painted (a
  stale frame: the page's state at an animation frame), counted over all the plays' step changes;
* **twenty sessions at once**: bench/load.py's full analysis (a new session opening a gallery
  image's link, until the server's script_finished) with ``--sessions`` websocket clients, each
  running ``--per-session`` analyses of images no session has opened before, on the same server.

With ``--cold-starts K`` it measures only the cold start, K times, each run of the app beside one of the floor
(bench/floor_app.py), alternating, each in a browser with a fresh profile: the spread of a figure that this
machine's speed moves by a second from one run to the next. ``--against COMMIT`` adds the app as it was at
that commit (checked out in a temporary git worktree, on the same checkpoints), in the same alternation: a
change to the cold start measured side by side with what it changed.

First of all it measures the **floor**: the cold start, the slider moves and the sessions at once (a
new session drawing the page) of bench/floor_app.py, a
bare page with the same slider, headline and charts but no model, data or anything else, in a browser
with a fresh profile of its own: what Streamlit and Chromium alone cost on this machine, beside which
the app's figures and the targets can be read.

It prints one markdown table with each figure beside its floor and its target, and the machine's state (CPUs,
load average before and after): the targets are for an idle 2-core machine, so a run beside other
work reads slower. Takes about 2 minutes on an idle 2-core machine and well under 5 when loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.load import GALLERY, ROOT, analyse, checkpoints_root, level
from testkit import chromium, step_recorder
from testkit.streamlit_client import APP, ServerError, open_page, serve

SLIDER = "[data-testid='stSlider'] input[type='range']"
PLAY = "//button[.//p[contains(normalize-space(), 'Play')]]"
# Returns once the page is drawn (testkit/chromium.py's DRAWN), checked in the page at the first animation frame after
# each change to it: the moment it was drawn, to the frame, where a poll from Python every 20 ms kept a third of a core
# busy (chromedriver and the renderer, on the idle 2-core machine). The two read a cold start the same within its noise.
WHEN_DRAWN = f"""
const [charts, done] = [arguments[0], arguments[arguments.length - 1]];
const drawn = {chromium.DRAWN};
let queued = false;
const check = () => {{
  queued = false;
  if (drawn(charts)) {{ observer.disconnect(); done(true); }}
}};
const observer = new MutationObserver(() => {{
  if (!queued) {{ queued = true; requestAnimationFrame(check); }}
}});
observer.observe(document.documentElement, {{subtree: true, childList: true, attributes: true, characterData: true}});
check();
"""
APP_CHARTS = 4           # the scrubber view of a recursive model: the bars, the classes, halting, the updates
FLOOR_CHARTS = 2         # bench/floor_app.py: the bars and the lines
TARGETS = {"slider": 0.300, "cold": 5.0, "p95": 2.5}
FLOOR_APP = Path(__file__).with_name("floor_app.py")


def browser(profile: Path):
    # webdriver's 30 s script timeout fails a tiny script on a busy machine
    return chromium.start(profile, window=(1400, 1800), page_load_timeout=120, script_timeout=120)


def until(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what} within {timeout} s")


def settled_on(driver, step: str, quiet: float, timeout: float = 60) -> step_recorder.Observation:
    """The first recorded observation of the page settled on ``step`` that has stayed so for ``quiet`` s."""
    def check():
        seen, _, now = step_recorder.read(driver)
        if not seen or not (seen[-1].settled and seen[-1].slider == step and seen[-1].headline == step):
            return None
        first = len(seen) - 1          # the start of the last settled stretch on this step
        while first > 0 and seen[first - 1].settled and seen[first - 1].slider == step \
                and seen[first - 1].headline == step:
            first -= 1
        return seen[first] if now - seen[-1].t >= quiet * 1000 else None
    return until(check, timeout, f"the page did not settle on step {step}")


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat; None where there is none."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])          # idle + iowait; user ... steal


def wait_until_idle(idle_share: float = 0.9, window: float = 0.25, timeout: float = 20.0) -> None:
    """Until the CPUs were at least ``idle_share`` idle over a ``window``: a cold start is measured on an idle
    machine, and the run before it leaves a browser and a server still exiting (load average 3 on 2 cores
    over back-to-back cold starts without this). Gives up after ``timeout`` s (a busy machine: the figures
    say so themselves)."""
    deadline = time.monotonic() + timeout
    before = _cpu_times()
    while before is not None and time.monotonic() < deadline:
        time.sleep(window)
        after = _cpu_times()
        idle, total = after[0] - before[0], after[1] - before[1]
        if total > 0 and idle / total >= idle_share:
            return
        before = after


def cold_start(env: dict[str, str], log: Path, driver, stack: contextlib.ExitStack,
               app: Path = APP, cwd: Path = ROOT, charts: int = APP_CHARTS) -> tuple[float, str]:
    """(seconds from launching the server to the first drawn page, its url); the server lives as long as ``stack``.
    ``cwd``: the checkout whose app runs (``app`` is its app/main.py). Starts once the machine is idle."""
    wait_until_idle()
    started = time.perf_counter()
    url = stack.enter_context(serve(log, env=env, timeout=120, app=app, cwd=cwd))
    driver.get(url)
    driver.execute_async_script(WHEN_DRAWN, charts)       # the driver's script timeout (120 s) bounds the wait
    return time.perf_counter() - started, url


def slider_moves(driver, moves: int) -> list[float]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    slider = driver.find_element(By.CSS_SELECTOR, SLIDER)
    low, high, value = (int(slider.get_attribute(a)) for a in ("min", "max", "value"))
    step_recorder.start(driver)
    settled_on(driver, str(value), quiet=0.3)
    seconds, direction = [], 1
    for _ in range(moves):
        if not low <= value + direction <= high:
            direction = -direction
        value += direction
        step_recorder.start(driver)
        slider = driver.find_element(By.CSS_SELECTOR, SLIDER)
        driver.execute_script("arguments[0].focus();", slider)
        slider.send_keys(Keys.ARROW_RIGHT if direction > 0 else Keys.ARROW_LEFT)
        settled = settled_on(driver, str(value), quiet=0.3)
        _, events, _ = step_recorder.read(driver)
        pressed = [t for kind, t in events if kind == "keydown"]
        seconds.append((settled.t - pressed[0]) / 1000)
    return seconds


def play(driver, interval: float) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    slider = driver.find_element(By.CSS_SELECTOR, SLIDER)
    last = slider.get_attribute("max")
    driver.execute_script("arguments[0].focus();", slider)
    slider.send_keys(Keys.HOME)
    step_recorder.start(driver)
    settled_on(driver, "1", quiet=0.5)
    step_recorder.start(driver)
    driver.find_element(By.XPATH, PLAY).click()
    settled_on(driver, last, quiet=2.0, timeout=120)
    seen, events, _ = step_recorder.read(driver)
    clicked = next(t for kind, t in events if kind == "click")
    shown = [o for o in seen if o.headline is not None and not o.headline_stale]
    reached = next(o.t for o in shown if o.headline == last)
    firsts = {}
    for o in shown:
        firsts.setdefault(o.headline, o.t)
    order = step_recorder.distinct(o.headline for o in shown)
    times = [firsts[s] for s in order]
    return {"steps": int(last), "seconds": (reached - clicked) / 1000, "nominal": (int(last) - 1) * interval,
            "shown": order, "skipped": [str(s) for s in range(1, int(last) + 1) if str(s) not in firsts],
            "in_order": order == [str(s) for s in range(1, int(last) + 1)],
            "gaps": [round((b - a) / 1000, 2) for a, b in zip(times, times[1:])],
            "stale_states": [o for o in seen if o.disagrees],
            "stale_frames": [o for o in step_recorder.read_frames(driver) if o.disagrees],
            "stale_settled": [o for o in seen if o.disagrees and o.settled]}


def open_floor_page(url: str, _: str, timeout: float) -> float:
    """One new session drawing bench/floor_app.py, until its script_finished; its seconds."""
    page = open_page(url, timeout=timeout)
    if page.status != "success" or page.exceptions:
        raise RuntimeError(f"the floor page did not draw: {page.status}: {page.exceptions}")
    return page.seconds


def floor(tmp: Path, moves: int, sessions: int, per_session: int) -> dict:
    """Cold start, slider moves and ``sessions`` sessions at once of bench/floor_app.py, in a browser with a fresh
    profile of its own, as the app's."""
    with contextlib.ExitStack() as stack:
        driver = browser(tmp / "floor-profile")
        browsing = stack.enter_context(contextlib.ExitStack())
        browsing.callback(driver.quit)
        cold, url = cold_start({"OMP_NUM_THREADS": "1"}, tmp / "floor.log", driver, stack, FLOOR_APP,
                               charts=FLOOR_CHARTS)
        moved = slider_moves(driver, moves)
        browsing.close()
        latencies, wall = level(url, sessions, [""] * (sessions * per_session), 300, one=open_floor_page)
        return {"cold": cold, "moves": moved, "latencies": latencies, "wall": wall}


def cold_starts(tmp: Path, env: dict[str, str], runs: int, against: str | None = None) -> None:
    """``runs`` cold starts of the app, each after one of the floor (and one of the app as it was at commit
    ``against``, from a git worktree); prints each run and the medians."""
    builds = {"floor": (FLOOR_APP, ROOT, FLOOR_CHARTS)}
    if against:
        other = tmp / "against"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), against], cwd=ROOT, check=True,
                       capture_output=True)
        builds[against] = (other / "app" / "main.py", other, APP_CHARTS)
    builds["app"] = (APP, ROOT, APP_CHARTS)
    seen: dict[str, list[float]] = {name: [] for name in builds}
    try:
        for run in range(runs):
            for name, (app, cwd, charts) in builds.items():
                with contextlib.ExitStack() as stack:
                    driver = browser(tmp / f"profile-{run}-{name}")
                    stack.callback(driver.quit)
                    seconds, _ = cold_start(env, tmp / "cold.log", driver, stack, app, cwd, charts)
                seen[name].append(seconds)
            print(f"run {run + 1}: " + ", ".join(f"{name} {times[-1]:.2f} s" for name, times in seen.items())
                  + f" (load average {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        if against:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "against")], cwd=ROOT,
                           capture_output=True)
    print(f"\ncold start (server launch) to a drawn page, {runs} runs each, target ≤ {TARGETS['cold']:.0f} s:")
    for name, times in seen.items():
        label = {"app": "this build", "floor": "floor (bench/floor_app.py)"}.get(name, f"the build at {name}")
        print(f"- {label}: median {statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in sorted(times))})")


def row(what: str, measured: str, target: str, met: bool | None, floor: str = "—") -> dict:
    return {"what": what, "measured": measured, "floor: a bare page (bench/floor_app.py)": floor, "target": target,
            "met": "—" if met is None else ("yes" if met else "**no**")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: checkpoints/vitrm-cifar10")
    parser.add_argument("--shipped", action="store_true",
                        help="serve the shipped checkpoints/ as it is: the first visit's page (the refining model "
                             "in focus, the flagship beside it) instead of one checkpoint alone")
    parser.add_argument("--moves", type=int, default=20, help="slider moves to time")
    parser.add_argument("--plays", type=int, default=3, help="times Play runs from step 1 to N")
    parser.add_argument("--sessions", type=int, default=20, help="sessions at once for the load figure")
    parser.add_argument("--per-session", type=int, default=3, help="analyses each of those sessions runs")
    parser.add_argument("--cold-starts", type=int, default=0, metavar="K",
                        help="measure only the cold start, K times beside the floor's")
    parser.add_argument("--against", metavar="COMMIT",
                        help="with --cold-starts: also the app as it was at COMMIT (a git worktree), alternating")
    args = parser.parse_args()
    if not chromium.available():
        raise SystemExit(f"{chromium.CHROMIUM} or {chromium.CHROMEDRIVER} is absent "
                         "(apt-get install chromium chromium-driver)")

    from app.views.scrubber import PLAY_INTERVAL  # the app's own pace, not a copy

    command = "python -m bench.browser_speed " + " ".join(sys.argv[1:])
    gallery = list(pd.read_csv(GALLERY / "labels.csv")["file"])
    order = sorted(gallery, key=lambda f: (f.rsplit("_", 1)[1], f))
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.shipped:
            if args.checkpoint:
                parser.error("--shipped serves the shipped checkpoints as they are; give it no --checkpoint")
            root = ROOT / "checkpoints"
            described = ("the shipped checkpoints/ as a first visit opens it (app/main.py's DEFAULT_CHECKPOINTS: "
                         "the refining model in focus, the flagship beside it)")
        else:
            root, _, described = checkpoints_root(args.checkpoint, tmp)
        env = {"VITRM_CHECKPOINTS": str(root), "OMP_NUM_THREADS": "1"}
        if args.cold_starts:
            print(f"command: {command}\ncheckpoint: {described}", flush=True)
            cold_starts(tmp, env, args.cold_starts, args.against)
            return
        try:
            bare = floor(tmp, args.moves, args.sessions, args.per_session)
            print(f"floor: cold start {bare['cold']:.2f} s; slider moves (s): {[round(s, 3) for s in bare['moves']]}; "
                  f"{args.sessions} sessions at once: {[round(s, 2) for s in sorted(bare['latencies'])]}", flush=True)
            with contextlib.ExitStack() as stack:
                driver = browser(tmp / "chromium-profile")
                browsing = stack.enter_context(contextlib.ExitStack())
                browsing.callback(driver.quit)
                cold, url = cold_start(env, tmp / "streamlit.log", driver, stack)
                print(f"cold start to a drawn page: {cold:.2f} s", flush=True)
                moves = slider_moves(driver, args.moves)
                print(f"slider moves (s): {[round(s, 3) for s in moves]}", flush=True)
                plays = []
                for _ in range(args.plays):
                    plays.append(play(driver, PLAY_INTERVAL))
                    played = plays[-1]
                    print(f"play: {played['seconds']:.2f} s for steps 1-{played['steps']} "
                          f"(nominal {played['nominal']:.1f} s); "
                          f"shown {played['shown']}; gaps {played['gaps']}; "
                          f"{len(played['stale_frames'])} stale frames painted, {len(played['stale_states'])} stale "
                          "states recorded", flush=True)
                browsing.close()           # the browser's CPU is not part of the load figure
                analyse(url, order[0], 300)           # the model is loaded already; this only warms the client path
                files = order[1:1 + args.sessions * args.per_session]
                latencies, wall = level(url, args.sessions, files, 300)
                print(f"{args.sessions} sessions at once: {[round(s, 2) for s in sorted(latencies)]}", flush=True)
        except (ServerError, TimeoutError) as e:
            log = tmp / "streamlit.log"
            raise SystemExit(f"{e}\nserver log:\n{log.read_text()[-3000:] if log.exists() else '(none)'}") from e
    load_after = os.getloadavg()

    p95 = float(np.percentile(latencies, 95))
    last, nominal = plays[0]["steps"], plays[0]["nominal"]
    seconds = statistics.median(p["seconds"] for p in plays)
    gaps = [g for p in plays for g in p["gaps"]]
    frames = [o for p in plays for o in p["stale_frames"]]
    changes = len(plays) * (last - 1)
    rows = [
        row(f"slider move to a settled page, median of {len(moves)}", f"{statistics.median(moves) * 1000:.0f} ms "
            f"(max {max(moves) * 1000:.0f} ms)", f"≤ {TARGETS['slider'] * 1000:.0f} ms",
            statistics.median(moves) <= TARGETS["slider"], f"{statistics.median(bare['moves']) * 1000:.0f} ms"),
        row(f"Play, steps 1→{last}, median of {len(plays)}", f"{seconds:.1f} s (nominal {nominal:.1f} s; "
            f"step gaps {min(gaps):.2f}-{max(gaps):.2f} s)", "the nominal pace", seconds <= nominal * 1.1),
        row("Play: every step shown, in order", "yes" if all(p["in_order"] for p in plays) else
            "no: " + "; ".join(f"shown {p['shown']}, skipped {p['skipped']}" for p in plays if not p["in_order"]),
            "every step", all(p["in_order"] for p in plays)),
        row(f"Play: stale frames painted (the step shown and the headline differ), over {changes} step changes",
            f"{len(frames)} ({sum(not o.headline_stale for o in frames)} with a headline not faded as stale; "
            f"states recorded: {sum(len(p['stale_states']) for p in plays)}, "
            f"{sum(len(p['stale_settled']) for p in plays)} on a settled page)", "0", not frames),
        row("cold start (server launch) to a drawn page", f"{cold:.1f} s", f"≤ {TARGETS['cold']:.0f} s",
            cold <= TARGETS["cold"], f"{bare['cold']:.1f} s"),
        row(f"{args.sessions} sessions at once, per analysis ({len(latencies)} analyses, new images)",
            f"p95 {p95:.2f} s (p50 {np.percentile(latencies, 50):.2f} s, {len(latencies) / wall:.2f} analyses/s)",
            f"p95 ≤ {TARGETS['p95']} s", p95 <= TARGETS["p95"],
            f"p95 {np.percentile(bare['latencies'], 95):.2f} s ({len(bare['latencies']) / bare['wall']:.2f} pages/s)"),
    ]
    import torch
    head = list(rows[0])
    print()
    print(f"command: {command}")
    print(f"checkpoint: {described}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"chromium {chromium.version()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
          f"{time.perf_counter() - started:.0f} s in all")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r[k] for k in head) + " |")



if __name__ == "__main__":
    main()
