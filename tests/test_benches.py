"""Benchmarks still run: each one's quick mode finishes and prints its table.

Figures are not checked here (timing belongs in bench/, not in tests); this only keeps the
benchmarks from rotting when the library they measure moves on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("flags, expected", [
    (["--quick"], "ViT,"),
    (["--quick", "--levers"], "channels-last"),
])
def test_the_training_throughput_bench_runs_in_quick_mode(flags, expected):
    out = run_bench("bench.train_throughput", "--threads", "1", *flags)
    assert expected in out
