"""A new visitor's default page while thirty sessions switch checkpoints and upload at once.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.thirty_sessions                          # this build
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.thirty_sessions --against HEAD~1 --rounds 3

The workload is tests/test_concurrency.py's thirty sessions, written once in testkit/switching_sessions.py (two tiny
models in one root; each session opens the default page, switches to the second model, uploads its own image, and
switches back), on one real ``streamlit run app/main.py`` server; meanwhile a new visitor opens the default page
again and again (a session of its own, through testkit/streamlit_client.py, timed from opening the websocket to the
run's end). Before the load, the same page is opened alone ten times, and the server's CPU time over those visits is
read from /proc (its cost per page, whatever the machine's load).

``--against REV`` runs another build (a git worktree of REV) the same way, alternating the two round by round on
fresh servers, so that both meet the same machine: figures are comparable only within one run of this command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from testkit.streamlit_client import ROOT, open_page, serve_process
from testkit.switching_sessions import switching_session, two_models

SESSIONS = 30
ALONE = 10                  # visits before the load, for the page's cost alone
TIMEOUT = 300


def session(url: str, index: int, barrier: threading.Barrier) -> list[str]:
    """One of the thirty (testkit/switching_sessions.py's walk); the exceptions its pages showed."""
    return [e for visit in switching_session(url, index, barrier, TIMEOUT) for e in visit.page.exceptions]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")      # utime + stime


def one_round(build: Path, models: Path, log: Path) -> dict:
    env = {"VITRM_CHECKPOINTS": str(models), "OMP_NUM_THREADS": "1"}
    with serve_process(log, env=env, timeout=3 * TIMEOUT, app=build / "app" / "main.py", cwd=build) as (url, process):
        open_page(url, timeout=3 * TIMEOUT)               # imports, the model loaded, the default image traced
        start = cpu_seconds(process.pid)
        alone = [open_page(url, timeout=TIMEOUT).seconds for _ in range(ALONE)]
        cpu = (cpu_seconds(process.pid) - start) / ALONE
        done = threading.Event()

        def probe() -> list[float]:
            seconds = []
            while not done.is_set():
                page = open_page(url, timeout=TIMEOUT)
                seconds.append(page.seconds)
                exceptions.extend(page.exceptions)
            return seconds

        barrier = threading.Barrier(SESSIONS)
        exceptions: list[str] = []
        with ThreadPoolExecutor(SESSIONS + 1) as pool:
            waits = pool.submit(probe)
            exceptions += [e for found in pool.map(lambda i: session(url, i, barrier), range(SESSIONS)) for e in found]
            done.set()
            loaded = waits.result()
    return {"alone": alone, "cpu": cpu, "loaded": loaded, "load": os.getloadavg()[0], "exceptions": exceptions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="another build (a git revision) to run alternately")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per build")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = two_models(tmp / "checkpoints")
        builds = {"this build": ROOT}
        if args.against:
            worktree = tmp / "against"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.against], cwd=ROOT, check=True,
                           capture_output=True)
            short = subprocess.check_output(["git", "rev-parse", "--short", args.against], cwd=ROOT, text=True).strip()
            builds[f"{args.against} ({short})"] = worktree
        results = {name: [] for name in builds}
        try:
            for r in range(args.rounds):
                for name, build in builds.items():
                    results[name].append(one_round(build, models, tmp / f"streamlit-{r}.log"))
                    last = results[name][-1]
                    print(f"round {r + 1}, {name}: loaded visits {', '.join(f'{s:.2f}' for s in last['loaded'])} s; "
                          f"{len(last['exceptions'])} exceptions {last['exceptions'][:2]}", flush=True)
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "against")], cwd=ROOT)
    print(f"\nA new visitor's default page, {SESSIONS} sessions switching and uploading meanwhile ({args.rounds} "
          "rounds per build, alternating)\n")
    print("| build | alone: median (visits) | server CPU per page alone | under the load: p50 | p95 | max | visits "
          "| load average after each round |\n|---|---|---|---|---|---|---|---|")
    for name, rounds in results.items():
        alone = [s for r in rounds for s in r["alone"]]
        loaded = [s for r in rounds for s in r["loaded"]]
        loads = ", ".join(f"{r['load']:.1f}" for r in rounds)
        print(f"| {name} | {np.median(alone):.2f} s ({len(alone)}) | {np.mean([r['cpu'] for r in rounds]):.3f} s "
              f"| {np.percentile(loaded, 50):.2f} s | {np.percentile(loaded, 95):.2f} s | {max(loaded):.2f} s "
              f"| {len(loaded)} | {loads} |")
    print("Produced by `OMP_NUM_THREADS=1 .venv/bin/python -m bench.thirty_sessions"
          + (f" --against {args.against}" if args.against else "") + f" --rounds {args.rounds}`.")


if __name__ == "__main__":
    main()
