"""What the benchmarks share: the flagship model, test images, side-by-side timing, tables.

The flagship is checkpoints/vitrm-cifar10. While it is being trained its directory may hold
only ``train_config.json`` (no weights yet), or weights that change every epoch; the
architecture is fixed, so latency is measured on whatever weights are there, or on random
weights of the same architecture.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "vitrm-cifar10"
SHARED = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"
# The training config's spelling (run from the repository root), so its decoded-image cache is reused.
SHARED_SPEC = "imagefolder:../shared/datasets/cifar10-jpeg"


def flagship_config():
    """The flagship's architecture: its config.json, else the model of its train_config.json."""
    import vitrm
    from vitrm.checkpoint import config_from_dict
    if (CHECKPOINT / "config.json").is_file():
        return vitrm.read_config(CHECKPOINT), f"{CHECKPOINT.relative_to(ROOT)}/config.json"
    train_config = CHECKPOINT / "train_config.json"
    if train_config.is_file():
        raw = json.loads(train_config.read_text())["model"]
        return config_from_dict(raw, str(train_config)), f"{train_config.relative_to(ROOT)}"
    return vitrm.ViTRMConfig(), "ViTRMConfig() defaults"


def load_model():
    """(model in eval mode, where it came from): the flagship's weights, else random ones."""
    import vitrm
    from vitrm.checkpoint import CheckpointError
    reason = "no weights yet"
    if (CHECKPOINT / "model.safetensors").is_file():
        try:
            return vitrm.load(CHECKPOINT), f"{CHECKPOINT.relative_to(ROOT)} (weights loaded)"
        except CheckpointError as e:
            reason = str(e)
    cfg, source = flagship_config()
    torch.manual_seed(0)
    return vitrm.build_model(cfg).eval(), f"{source}, random weights ({reason})"


def describe_model(model, source: str) -> str:
    from vitrm import num_parameters
    cfg = model.config
    return (f"model: {source}: {cfg.tokenizer} tokenizer, patch {cfg.patch_size}, dim {cfg.dim}, heads {cfg.heads}, "
            f"k={cfg.layers}, n={cfg.latent_updates}, combine={cfg.combine}, N={cfg.trained_steps}, "
            f"T={cfg.num_tokens} tokens, {num_parameters(model):,} parameters")


def environment() -> str:
    return (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
            f"python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}")


def test_images(n: int, cfg) -> tuple[torch.Tensor, str]:
    """The first ``n`` uint8 test images of CIFAR-10 (JPEG q75 copy), else random ones."""
    if SHARED.is_dir():
        from vitrm.data import load_split
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            split = load_split(SHARED_SPEC, "test", image_size=cfg.image_size)
        finally:
            os.chdir(cwd)
        n = min(n, len(split))
        return split.images[:n], f"CIFAR-10 (JPEG q75 copy) test set ({n} image{'s' * (n != 1)})"
    g = torch.Generator().manual_seed(0)
    shape = (n, cfg.in_channels, cfg.image_size, cfg.image_size)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g), f"{n} random images (../shared absent)"


def images_like(cfg, batch: int) -> torch.Tensor:
    return torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size)


def side_by_side(fns: dict, repeats: int, warm_up: bool = True) -> dict[str, float]:
    """Median milliseconds of each function, timed in turn within every repeat.

    Interleaving (A, B, A, B, ...) makes a background load drifting over the run shift
    every side alike, so ratios stay fair.
    """
    if warm_up:
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def training_step(model, images, labels):
    """One optimizer step as vitrm.train takes it: every supervised step's loss, backward, AdamW."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters())

    def step():
        logits, _ = model(images, deep_supervision=True)
        loss = sum(F.cross_entropy(s, labels) for s in logits) / len(logits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def table(title: str, rows: list[dict], note: str = "") -> None:
    print(f"\n## {title}")
    print(pd.DataFrame(rows).to_string(index=False))
    if note:
        print(note)
