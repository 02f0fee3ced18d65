"""What hostile input costs: every odd file of the test corpus, a decompression bomb, and
malicious checkpoint configs, each in a fresh process so that one measurement cannot hide another.

    .venv/bin/python -m bench.hostile_inputs

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
}


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


def main() -> None:
    images = [(name, run(IMAGE_CASE.format(name=name))) for name in odd_files()]
    configs = [(name, run(CONFIG_CASE.format(changes=repr(changes)))) for name, changes in CONFIGS.items()]
    table(f"load_image on the {len(images)} files of testkit/oddfiles.py", images)
    table("vitrm.load on a checkpoint whose config.json was tampered with", configs)
    crashed = [n for n, r in images + configs if r["outcome"].startswith("CRASHED")]
    print(f"\n{len(crashed)} crashes" + (f": {crashed}" if crashed else ""))
    print("Produced by `.venv/bin/python -m bench.hostile_inputs`; memory is VmHWM of a fresh process.")


if __name__ == "__main__":
    main()
