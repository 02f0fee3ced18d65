"""The trained-N sweep: models that differ only in how many recursion steps they were trained with.

Two different curves are both called "accuracy vs N", and they answer different questions:

* **test-time steps**: one model, run for 1, 2, .. S steps (``metrics.json``'s ``top1_by_step``).
  It shows how one model refines its answer; it is the scrubber's story.
* **trained N**: one model per N, each trained and tested with its own N, same parameters, same
  recipe and budget. It tests the paper's claim that recursion substitutes for depth.

This module owns the second. A sweep is a set of ViTRM checkpoints whose ``config.json`` files
are equal except for ``trained_steps``; ``find_sweeps`` groups them, ``flops_per_image`` gives
the compute each N costs. ``model_points`` widens the view to every architecture: accuracy against
parameters and against compute, the paper's "fewer parameters" claim as one chart.

What both take from a checkpoint besides its weights (config.json, metrics.json, train_log.csv) comes from
``read_point_files``: the side-file gate (``vitrm.sidefiles``), every file charged to one ``sidefiles.Budget`` of
the checkpoint. A caller that has already read the checkpoint's files as one (the app) passes its own reader, so
nothing is read twice or past that budget; a file refused is a problem the point carries, not a skipped model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load, read_config
from .model import ModelConfig, ViTRMConfig, num_parameters

EXPLANATION = ("Accuracy vs trained N compares separate models, each trained and tested with its own number "
               "of recursion steps N (same weights count, more compute per image as N grows); accuracy vs "
               "test-time steps runs one trained model for more or fewer steps than it was trained with.")


@dataclass(frozen=True)
class PointFiles:
    """What a point takes from a checkpoint's files besides its weights, each read through the side-file gate."""

    config: ModelConfig
    metrics: dict | None            # None: absent, or refused (then a problem says why)
    epochs: int | None              # rows of its own train_log.csv (a staged run's last stage)
    problems: tuple[tuple[str, str], ...] = ()      # (what the point lacks, why): ("accuracy", "…/metrics.json: …")


def read_point_files(path: str | os.PathLike, budget=None) -> PointFiles:
    """config.json, metrics.json and train_log.csv of ``path``, read through the side-file gate and charged to one
    ``sidefiles.Budget`` (``budget``, or a fresh one for the checkpoint). A damaged file, or one past the budget,
    becomes a problem naming it; CheckpointError only when config.json itself is bad."""
    from . import sidefiles, steps
    budget = sidefiles.Budget(path) if budget is None else budget
    config = read_config(path, budget)
    problems = []
    try:
        metrics = sidefiles.read_metrics(path, config.num_classes, budget, steps.max_steps(config))
    except CheckpointError as e:
        metrics = None
        problems.append(("accuracy", str(e)))
    try:
        log = sidefiles.read_train_log(path, budget)
    except CheckpointError as e:
        log = None
        problems.append(("training budget", str(e)))
    return PointFiles(config=config, metrics=metrics, epochs=None if log is None else len(log),
                      problems=tuple(problems))


@dataclass(frozen=True)
class SweepPoint:
    path: Path
    trained_steps: int
    parameters: int
    flops_per_image: int            # forward pass at the trained N, one image
    top1: float | None              # test top-1 at the trained N, from metrics.json; None if not evaluated
    num_images: int | None
    data: str | None
    epochs: int | None = None       # rows of its own train_log.csv: the training budget (None: no log)
    problems: tuple[tuple[str, str], ...] = ()      # what it lacks and why (``PointFiles.problems``)


def flops_per_image(model: torch.nn.Module, steps: int | None = None) -> int:
    """FLOPs of one forward pass on one image (matmuls, convolutions, attention), counted by torch."""
    # Imported here: torch's FLOP counter pulls in triton (about 0.5 s on the 2-core machine), which the app's
    # first page, a cold start's critical path, does not need.
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    image = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image, steps) if cfg.recursive else model(image)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class ModelPoint:
    """One checkpoint on the accuracy-vs-cost chart."""

    path: Path
    arch: str
    recursive: bool
    trained_steps: int
    parameters: int
    flops_per_image: int            # forward pass at the trained N, one image
    top1: float | None              # test top-1 at the trained N (metrics.json); None if not evaluated
    epochs: int | None              # rows of its own train_log.csv: the training budget (None: no log)
    data: str | None
    family: tuple | None            # recursive models equal but for trained_steps share one; None otherwise
    problems: tuple[tuple[str, str], ...] = ()      # what it lacks and why (``PointFiles.problems``)


def model_points(paths: list[str | os.PathLike], read=read_point_files) -> list[ModelPoint]:
    """Every readable checkpoint among ``paths`` as a point: parameters, FLOPs per image, top-1 at its
    trained N, and its training budget in epochs. Unreadable directories are skipped; ``read(path)`` gives the
    rest (``read_point_files``), a refused file costing the point only what that file gives."""
    points = []
    for path in sorted(Path(p) for p in paths):
        try:
            files = read(path)
            model = load(path)
        except CheckpointError:
            continue
        config, metrics = model.config, files.metrics
        steps = config.trained_steps
        points.append(ModelPoint(
            path=path, arch=config.arch, recursive=config.recursive, trained_steps=steps,
            parameters=num_parameters(model), flops_per_image=flops_per_image(model, steps),
            top1=_top1_at_trained(metrics, steps), epochs=files.epochs,
            data=(metrics or {}).get("data"), family=_family(config) if config.recursive else None,
            problems=files.problems))
    return points


def _family(config: ViTRMConfig) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.to_dict().items() if k != "trained_steps"))


def _top1_at_trained(metrics: dict | None, steps: int) -> float | None:
    by_step = (metrics or {}).get("top1_by_step")
    if isinstance(by_step, list) and len(by_step) >= steps and isinstance(by_step[steps - 1], (int, float)):
        return float(by_step[steps - 1])
    return None


def find_sweeps(paths: list[str | os.PathLike], read=read_point_files) -> list[list[SweepPoint]]:
    """Groups of at least two ViTRM checkpoints that differ only in ``trained_steps``, each sorted by N.

    Directories that are not readable checkpoints are skipped, as are two checkpoints with the same
    N in one family (the first by path is kept), so a stray copy cannot draw a zigzag. ``read(path)`` gives
    each one's config, metrics and log (``read_point_files``): a refused file costs only what it gives.
    """
    families: dict[tuple, dict[int, Path]] = {}
    found: dict[Path, PointFiles] = {}
    for path in sorted(Path(p) for p in paths):
        try:
            files = read(path)
        except CheckpointError:
            continue
        config = files.config
        if config.recursive:
            families.setdefault(_family(config), {}).setdefault(config.trained_steps, path)
            found[path] = files
    sweeps = []
    for members in families.values():
        if len(members) < 2:
            continue
        points = []
        for steps, path in sorted(members.items()):
            try:
                model = load(path)
            except CheckpointError:
                continue
            files = found[path]
            metrics = files.metrics         # None when damaged or past the budget: only this point's accuracy
            points.append(SweepPoint(path=path, trained_steps=steps, parameters=num_parameters(model),
                                     flops_per_image=flops_per_image(model, steps),
                                     top1=_top1_at_trained(metrics, steps),
                                     num_images=(metrics or {}).get("num_images"), data=(metrics or {}).get("data"),
                                     epochs=files.epochs, problems=files.problems))
        if len(points) >= 2:
            sweeps.append(points)
    return sweeps
