"""Every test image's answer token over the steps, on one 2-D map: the side file ``projection.safetensors``.

    python -m vitrm project --checkpoint DIR --data SPEC [--steps S] [--limit N]

runs the model over the split (the test split by default) for steps 1..S (default: the steps its
``metrics.json`` covers, else twice the trained count), takes the answer token y after every step as the
class head reads it (layer-normed), and fits ONE principal-component projection to 2-D over all steps and
images together (``torch.pca_lowrank`` with as many components as y has dimensions: exact, not randomized
in effect), so that a point's position means the same at every step
and the class clusters can be watched forming. A projection per step would make the steps incomparable.

The file (safetensors, no pickle) holds, for S steps and N images:

    coords   float16 [S, N, 2]   each image's y after each step, in the fitted projection
    index    int64   [N]         the image's position in the split (the ``index`` of predictions.csv)
    label    int32   [N]         its true class
    pred     int32   [S, N]      the model's answer after each step (the argmax of the logits)

and, as safetensors metadata (strings): ``format``, ``feature``, ``data``, ``split``, ``explained``
(the two components' shares of the variance, a JSON list) and ``command``. It is bounded: at most
MAX_IMAGES images (spread evenly over the split, every class represented) and MAX_STEPS steps, a few MB.
``vitrm.sidefiles.read_projection`` reads it back through the same gate as every side file.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FILE", "FORMAT", "FEATURE", "MAX_IMAGES", "MAX_STEPS", "KEYS", "Projection", "project", "fit",
           "write", "project_checkpoint", "matches", "nearest_centre", "summary"]

FILE = "projection.safetensors"
FORMAT = "vitrm-projection 1"
FEATURE = "the answer token y after each step, layer-normed as the class head reads it"
MAX_IMAGES = 10_000
MAX_STEPS = 64
KEYS = {"coords": (np.float16, 3), "index": (np.int64, 1), "label": (np.int32, 1), "pred": (np.int32, 2)}


@dataclass(frozen=True)
class Projection:
    """A checkpoint's projection.safetensors, validated (``vitrm.sidefiles.read_projection``); arrays read-only."""

    coords: np.ndarray            # float16 [S, N, 2]
    index: np.ndarray             # int64 [N]
    label: np.ndarray             # int32 [N]
    pred: np.ndarray              # int32 [S, N]
    explained: tuple[float, float]
    data: str = ""
    split: str = ""
    feature: str = ""

    @property
    def steps(self) -> int:
        return self.coords.shape[0]

    @property
    def images(self) -> int:
        return self.coords.shape[1]

    def right(self, step: int) -> np.ndarray:
        """[N] whether each image's answer after ``step`` (1-based) is its true class."""
        return self.pred[step - 1] == self.label

    def changed(self, n: int) -> np.ndarray:
        """[N] whether each image's answer after step ``n`` differs from its answer after step 1."""
        return self.pred[min(n, self.steps) - 1] != self.pred[0]


def fit(features, seed: int = 0):
    """(coords [S, N, 2], explained [2]) of features [S, N, D]: one PCA over all S x N vectors."""
    import torch
    x = torch.as_tensor(features, dtype=torch.float32).detach()
    S, N, D = x.shape
    flat = x.reshape(S * N, D)
    mean = flat.mean(0, keepdim=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, sigma, v = torch.pca_lowrank(flat, q=min(D, S * N), center=True, niter=2)
    centred = flat - mean
    coords = (centred @ v[:, :2]).reshape(S, N, 2)
    total = float(centred.pow(2).sum())
    explained = (sigma[:2].pow(2) / total).tolist() if total > 0 else [0.0, 0.0]
    return coords, explained + [0.0] * (2 - len(explained))


def project(model, images, batch_size: int = 500, steps: int | None = None):
    """(coords [S, N, 2], pred [S, N], explained) of normalized ``images`` [N, C, H, W] through ``steps`` steps."""
    import torch
    features, preds = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            trace = model.trace(images[start:start + batch_size], steps, attention=False)
            features.append(model.head_norm(trace.y).float())
            preds.append(trace.logits.argmax(-1))
    coords, explained = fit(torch.cat(features, 1))
    return coords, torch.cat(preds, 1), explained


def write(path: Path, coords, index, label, pred, explained, metadata: dict) -> Path:
    """Write ``path``/projection.safetensors atomically; returns the file."""
    import torch

    from .checkpoint import save_tensors
    file = Path(path) / FILE
    tensors = {"coords": torch.as_tensor(coords).to(torch.float16), "index": torch.as_tensor(index).to(torch.int64),
               "label": torch.as_tensor(label).to(torch.int32), "pred": torch.as_tensor(pred).to(torch.int32)}
    meta = {"format": FORMAT, "feature": FEATURE, "explained": json.dumps([round(float(e), 6) for e in explained]),
            **{k: str(v) for k, v in metadata.items()}}
    save_tensors(tensors, file, metadata=meta)
    return file


def project_checkpoint(checkpoint, data: str, split: str = "test", data_dir="data", steps: int | None = None,
                       limit: int | None = None, batch_size: int = 500, cache_dir=None,
                       command: list[str] | None = None) -> Path:
    """Project a checkpoint's answers on ``split`` of ``data`` and write the side file; every check first."""
    from . import checkpoint as ckpt
    from .analysis import evenly_spaced, normalize
    from .data import DEFAULT_CACHE, check_spec, load_split
    from .errors import UsageError
    from .evaluate import _check_classes
    from .sidefiles import read_metrics
    from .steps import default_steps, resolve as resolve_steps

    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and not 1 <= limit <= MAX_IMAGES:
        raise UsageError(f"--limit must be between 1 and {MAX_IMAGES}, got {limit}")
    path = Path(checkpoint)
    model = ckpt.load(path)
    cfg = model.config
    if not cfg.recursive:
        raise UsageError(f"{path}: a {cfg.arch} baseline has one step and no answer token to follow over steps")
    metrics = read_metrics(path, cfg.num_classes)
    default = len(metrics["top1_by_step"]) if metrics else default_steps(cfg)
    steps = resolve_steps(cfg, steps, flag="--steps", default=min(default, MAX_STEPS))
    if steps > MAX_STEPS:
        raise UsageError(f"--steps must be at most {MAX_STEPS} for a projection, got {steps}")
    check_spec(data, data_dir)
    full = load_split(data, split, data_dir, cfg.image_size, cache_dir or DEFAULT_CACHE)
    _check_classes(data, full.class_names, cfg)
    indices = evenly_spaced(len(full), min(limit or MAX_IMAGES, len(full)))
    part = full.subset(indices)
    coords, pred, explained = project(model, normalize(part.images, cfg.mean, cfg.std), batch_size, steps)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return write(path, coords, indices, part.labels, pred, explained,
                 {"data": data, "split": split, "created_at": created,
                  "command": " ".join(command or ["python", "-m", "vitrm", "project"])})


def nearest_centre(p: Projection, step: int) -> float:
    """The share of images whose nearest class centre on the map at ``step`` (the mean of that class's points
    there) is their own class: how far the classes have gathered into clusters on the map."""
    xy = p.coords[step - 1].astype(np.float32)
    classes = np.unique(p.label)
    centres = np.stack([xy[p.label == c].mean(0) for c in classes])
    nearest = classes[((xy[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)]
    return float((nearest == p.label).mean())


def summary(p: Projection, trained: int) -> str:
    n = min(trained, p.steps)
    return (f"{p.images:,} images x {p.steps} steps; the two components explain {p.explained[0]:.1%} and "
            f"{p.explained[1]:.1%} of the variance; nearest class centre on the map is the true class for "
            f"{nearest_centre(p, 1):.1%} at step 1, {nearest_centre(p, n):.1%} at N={n}; answer changed between "
            f"step 1 and N for {p.changed(n).mean():.1%}; top-1 {p.right(1).mean():.2%} at step 1, "
            f"{p.right(n).mean():.2%} at N")


def project_cli(args) -> None:
    import time
    start = time.perf_counter()
    file = project_checkpoint(args.checkpoint, args.data, args.split, args.data_dir, args.steps, args.limit,
                              args.batch_size, args.cache_dir, command=args.command_line)
    from .checkpoint import read_config
    from .sidefiles import read_projection
    config = read_config(args.checkpoint)
    p = read_projection(args.checkpoint, config.num_classes)
    print(f"wrote {file} ({file.stat().st_size / 2**20:.2f} MB, {time.perf_counter() - start:.0f} s): "
          f"{summary(p, config.trained_steps)}")


def main(argv=None) -> None:
    """``python -m vitrm.projection CHECKPOINT...``: what each checkpoint's projection.safetensors shows."""
    import sys

    from .checkpoint import read_config
    from .sidefiles import read_projection
    for path in argv if argv is not None else sys.argv[1:]:
        config = read_config(path)
        p = read_projection(path, config.num_classes)
        print(f"{path}: {'no ' + FILE if p is None else summary(p, config.trained_steps)}")


def matches(projection: Projection, predictions) -> str | None:
    """Why ``projection`` does not describe the images of the per-image table ``predictions`` (an image absent from
    it, or another true class), or None when it does."""
    if predictions is None:
        return None
    index, label = predictions["index"].to_numpy(), predictions["label"].to_numpy()
    order = np.argsort(index, kind="stable")
    at = np.clip(np.searchsorted(index[order], projection.index), 0, max(len(index) - 1, 0))
    present = (index[order][at] == projection.index) if len(index) else np.zeros(projection.images, bool)
    same = present & (label[order][at] == projection.label) if len(index) else present
    if same.all():
        return None
    first = int(np.flatnonzero(~same)[0])
    return (f"image {int(projection.index[first])} of the projection is "
            f"{'another class in' if present[first] else 'absent from'} predictions.csv.gz: the two files come "
            "from different data")


if __name__ == "__main__":
    main()
