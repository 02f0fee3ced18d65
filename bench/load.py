"""Many users at once: latency of a full analysis at 1, 5 and 20 concurrent sessions on one server.

    python -m bench.load [--checkpoint DIR] [--levels 1 5 20] [--per-session 10 4 3] [--no-cached]

Starts one real `streamlit run app/main.py` server and drives it with websocket clients that
speak the browser's protocol (testkit/streamlit_client.py). One *full analysis* is one new
session opening a link to a gallery image (``?image=cat_0003``): from opening the websocket
until the server's ``script_finished``, i.e. the whole Explore page (scrubber view) computed
and every element delivered to the client. The browser's drawing is not included
(bench/app_latency.py measures that).

At concurrency c, c clients each open sessions back to back (``--per-session`` each), so c
analyses are in flight all the time. Every timed session asks for a gallery image that no
session has asked for before, so each one traces its image (model work included); a second
pass (skip it with --no-cached) repeats the same images, whose traces are then in the shared
cache, as when a class opens links that others have already opened. One warm-up session first
loads the model (not timed in the table).

Without --checkpoint it uses checkpoints/vitrm-cifar10 when it has weights, else an untrained
model of the same architecture (its train_config.json): the compute is the same. While a
training run writes new weights, the app reloads the model and traces images again (the
caches are keyed by the weights' mtime); the server's log says how many loads there were.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from app.text import md  # the caption escapes the file name for markdown
from testkit.streamlit_client import open_page, serve

ROOT = Path(__file__).resolve().parents[1]

FLAGSHIP = ROOT / "checkpoints" / "vitrm-cifar10"
GALLERY = ROOT / "app" / "gallery"


def checkpoints_root(requested: Path | None, tmp: Path) -> tuple[Path, Path, str]:
    """(root for VITRM_CHECKPOINTS, the checkpoint the app will show, a description)."""
    import torch

    import vitrm
    from vitrm.checkpoint import config_from_dict

    path = requested or FLAGSHIP
    if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
        # A copy, alone in a root of its own, so that it is the app's only and default selection (the shipped
        # root's first visit opens on the refining model beside the flagship; a symlink pointing out of the
        # root would not be listed) and a training run writing new weights cannot swap it.
        root = tmp / "checkpoints"
        root.mkdir()
        shutil.copytree(path, root / path.name, ignore=shutil.ignore_patterns("train_state.*"))
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        return root, root / path.name, f"{shown} alone (a copy of its weights as they were when the run started)"
    if requested is not None:
        raise SystemExit(f"{requested}: no model.safetensors and config.json")
    raw = json.loads((FLAGSHIP / "train_config.json").read_text())["model"]
    config = config_from_dict(raw, str(FLAGSHIP / "train_config.json"))
    torch.manual_seed(0)
    out = vitrm.save(vitrm.build_model(config), tmp / "checkpoints" / "vitrm-cifar10")
    return out.parent, out, ("untrained, the architecture of checkpoints/vitrm-cifar10/train_config.json "
                             "(no weights yet)")


def analyse(url: str, file: str, timeout: float) -> float:
    """One full analysis of one gallery image in a new session; its seconds. Raises if the page is wrong."""
    page = open_page(url, query=f"image={file.removesuffix('.jpg')}", timeout=timeout)
    problems = page.exceptions + page.alerts("error")
    if page.status != "success" or problems:
        raise RuntimeError(f"{file}: {page.status}: {problems or page.compile_error}")
    if f"{md(file)}: original" not in page.text or not any(k.startswith("Top class at step") for k in page.metrics):
        raise RuntimeError(f"{file}: the page does not show this image's prediction:\n{page.text[:400]}")
    return page.seconds


def level(url: str, concurrency: int, files: list[str], timeout: float,
          one=analyse) -> tuple[list[float], float]:
    """``concurrency`` clients, each analysing its share of ``files`` one after another (``one(url, file, timeout)``
    times one); (latencies, wall s)."""
    shares = [files[i::concurrency] for i in range(concurrency)]
    barrier = threading.Barrier(concurrency)

    def client(share: list[str]) -> list[float]:
        barrier.wait()
        return [one(url, f, timeout) for f in share]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [s for out in pool.map(client, shares) for s in out]
    return latencies, time.perf_counter() - start


def row(concurrency: int, latencies: list[float], wall: float) -> dict:
    return {"sessions at once": concurrency, "analyses": len(latencies),
            "p50 s": round(float(np.percentile(latencies, 50)), 2),
            "p95 s": round(float(np.percentile(latencies, 95)), 2),
            "max s": round(max(latencies), 2),
            "analyses/s": round(len(latencies) / wall, 2)}


def markdown(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: checkpoints/vitrm-cifar10")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 5, 20], help="sessions at once")
    parser.add_argument("--per-session", type=int, nargs="+", default=[10, 4, 3],
                        help="analyses each client runs back to back, per level")
    parser.add_argument("--no-cached", action="store_true", help="skip the pass over already-traced images")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed for one analysis")
    args = parser.parse_args()
    if len(args.per_session) != len(args.levels):
        parser.error("give one --per-session count per level")

    gallery = list(pd.read_csv(GALLERY / "labels.csv")["file"])
    needed = 1 + sum(c * k for c, k in zip(args.levels, args.per_session))
    if needed > len(gallery):
        parser.error(f"{needed} different images needed, the gallery has {len(gallery)}")
    # Spread over the classes: image i of every class before image i+1 of any.
    order = sorted(gallery, key=lambda f: (f.rsplit("_", 1)[1], f))
    warmup, rest = order[0], order[1:]

    command = "python -m bench.load " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root, checkpoint, described = checkpoints_root(args.checkpoint, tmp)
        log = tmp / "streamlit.log"
        load_before = os.getloadavg()
        started = time.perf_counter()
        with serve(log, env={"VITRM_CHECKPOINTS": str(root), "OMP_NUM_THREADS": "1"}) as url:
            server_start = time.perf_counter() - started
            first = analyse(url, warmup, args.timeout)
            cold, warm, used = [], [], 0
            for c, k in zip(args.levels, args.per_session):
                files = rest[used:used + c * k]
                used += c * k
                cold.append(row(c, *level(url, c, files, args.timeout)))
                print(f"new images, {c} at once: {cold[-1]}", flush=True)
                if not args.no_cached:
                    warm.append(row(c, *level(url, c, files, args.timeout)))
                    print(f"traced images, {c} at once: {warm[-1]}", flush=True)
            loads = [line for line in log.read_text().splitlines() if "loaded checkpoint" in line]
        load_after = os.getloadavg()

    import torch
    print()
    print(f"command: {command}")
    print(f"checkpoint: {described}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"one torch thread per computation; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"server start {server_start:.1f} s; first analysis (imports, model load, trace) {first:.2f} s; "
          f"model loads in the server's log: {len(loads)}")
    print("\nA full analysis: new session -> ?image=<gallery image> -> Explore page (scrubber) -> script_finished\n")
    print("Every session a new image (traced):")
    print(markdown(cold))
    if warm:
        print("\nImages already traced (shared cache):")
        print(markdown(warm))


if __name__ == "__main__":
    main()
