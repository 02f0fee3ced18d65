"""Every piece of model work the app does, cached so that each runs once.

* Models: ``st.cache_resource``, keyed by checkpoint path and the weights' mtime (a training
  run that writes a new epoch is picked up), shared read-only by every session.
* Images: decoded once per file content (sha256), with the library's clear error if bad.
* Traces: ``st.cache_resource``, keyed by image hash, checkpoint, mtime and step count. The
  trace is run to the default N (twice the trained count) or, when N goes past it, to the most
  steps the app offers, and sliced (``traced_steps``), so moving the slider or changing N within
  either does no model work. A resource, not data: st.cache_data would unpickle the
  trace's tensors (0.6 MB for the flagship) on every read, tens of milliseconds per page run.
  So one ImageRun is shared by every session: views read it and never write to it (its numpy
  arrays are read-only, so a write fails loudly).
* Attributions: ``st.cache_data`` per image, checkpoint, method, step and target.

Each shows a spinner when it takes longer than half a second (Streamlit's spinner delay); a
cached result shows none.

This is the only app module that touches a model; views get the results.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

import vitrm
from vitrm import analysis, to_model_input

from . import checkpoints, derive, summaries

THUMBNAIL = 512              # longest side of the original shown beside the model input

# One intra-op thread per computation. A single image's trace is too small to gain from more,
# sessions already run in parallel threads, and a second thread per op oversubscribes small
# machines: on the 2-core box with a training run beside it, a script run took 7-16 s with
# torch's default threads and under 1 s with one.
torch.set_num_threads(1)

# One line in the server's log each time a checkpoint's weights are read: with the shared cache
# that is once per checkpoint and weights file, however many sessions are open.
log = logging.getLogger("vitrm.app")
if not log.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- models and files

@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def load_model(path: str, mtime: float) -> torch.nn.Module:
    start = time.perf_counter()
    model = vitrm.load(path)
    log.info("loaded checkpoint %s (weights mtime %.3f) in %.2f s", path, mtime, time.perf_counter() - start)
    return model


@st.cache_resource(max_entries=32, show_spinner=False)
def checkpoint_files(path: str, mtime: float) -> checkpoints.CheckpointFiles:
    """Shared by every session and never modified (tests/test_app.py checks that the pages leave it as read): a
    resource, not data, because st.cache_data would unpickle the predictions table (5.6 MB for the flagship) of
    every loaded model and baseline on every page run."""
    return checkpoints.read_files(Path(path))


@st.cache_data(max_entries=32, show_spinner=False)
def model_card(path: str, files_mtime: float, mtime: float) -> dict:
    """``summaries.model_card`` of a checkpoint, once per version of its files and weights (every page run shows the
    cards of the loaded models and the baselines)."""
    return summaries.model_card(checkpoint_files(path, files_mtime), model_facts(path, mtime)["parameters"])


def _facts(model: torch.nn.Module) -> dict:
    return {"parameters": vitrm.num_parameters(model), "parameters_by_part": analysis.parameters_by_part(model)}


@st.cache_data(max_entries=16, show_spinner="Loading the model…")
def model_facts(path: str, mtime: float) -> dict:
    """Parameter count, in all and per top-level part (tokenizer, block, heads, ...)."""
    return _facts(load_model(path, mtime))


@st.cache_data(max_entries=32, show_spinner="Counting the compute per image…")
def flops_per_image(path: str, mtime: float) -> int | None:
    """FLOPs of one image at the trained step count; None if torch's counter cannot run this model.

    Asked for only where a model table or an opened model card shows it: torch's counter takes seconds the
    first time in a process, which the Explore page's first drawing must not wait for."""
    model = load_model(path, mtime)
    steps = model.config.trained_steps if model.config.recursive else None
    try:
        return vitrm.flops_per_image(model, steps)
    except Exception as e:      # a stranger's checkpoint costs the table one cell, never the page
        log.warning("could not count the FLOPs of %s: %s", path, e)
        return None


def trained_n_sweeps() -> list[list[vitrm.SweepPoint]]:
    """The trained-N sweeps among the discovered checkpoints; recomputed when any of their files change."""
    paths = checkpoints.discover()
    stamps = tuple((str(p), max((f.stat().st_mtime for f in p.iterdir() if f.is_file()), default=0.0)) for p in paths)
    return _sweeps(stamps)


@st.cache_data(max_entries=4, show_spinner="Reading the trained-N sweep…")
def _sweeps(stamps: tuple[tuple[str, float], ...]) -> list[list[vitrm.SweepPoint]]:
    return vitrm.find_sweeps([path for path, _ in stamps], read=_point_files)


def model_points() -> list[vitrm.ModelPoint]:
    """Every discovered checkpoint's cost and accuracy; recomputed when any of their files change."""
    paths = checkpoints.discover()
    stamps = tuple((str(p), max((f.stat().st_mtime for f in p.iterdir() if f.is_file()), default=0.0)) for p in paths)
    return _model_points(stamps)


@st.cache_data(max_entries=4, show_spinner="Counting each checkpoint's parameters and compute…")
def _model_points(stamps: tuple[tuple[str, float], ...]) -> list[vitrm.ModelPoint]:
    return vitrm.model_points([path for path, _ in stamps], read=_point_files)


def _point_files(path: Path) -> vitrm.PointFiles:
    """A checkpoint's config, metrics and log for the sweep and the cost chart, taken from the app's one reading of
    its files (``checkpoint_files``, charged to its one budget) rather than read again beside it."""
    return checkpoint_files(str(path), checkpoints.files_mtime(Path(path))).point_files()


@st.cache_data(show_spinner=False)
def default_model_facts() -> dict:
    """The same for an untrained ViTRM with the library's default config (shown before any training)."""
    return _facts(vitrm.ViTRM(vitrm.ViTRMConfig()))


# --------------------------------------------------------------------------- images

@dataclass
class PreparedImage:
    name: str
    digest: str
    label: str | None = None                 # the true class when known (gallery, dataset)
    thumbnail: Image.Image | None = None     # the original, shrunk for display
    original_size: tuple[int, int] | None = None
    pixels: dict[int, np.ndarray] | None = None   # model input [S, S, 3] uint8, per image size
    error: str | None = None                 # the library's message for a bad file

    @property
    def ok(self) -> bool:
        return self.error is None


@st.cache_data(max_entries=128, show_spinner="Decoding the image…")
def prepare_image(key: str, name: str, sizes: tuple[int, ...], label: str | None, _data: bytes) -> PreparedImage:
    """Decode once (``key`` is the content hash); keep a thumbnail and the model inputs.

    The full-size image lives only inside a decode slot (``vitrm.decode_slot``), so that a class uploading
    large images together holds at most the library's cap of full-size images at once.
    """
    source = io.BytesIO(_data)
    source.name = name          # so the library's message names the file
    with vitrm.decode_slot():
        try:
            image = vitrm.load_image(source)
        except vitrm.InvalidImageError as e:
            return PreparedImage(name=name, digest=key, label=label, error=str(e))
        pixels = {s: to_model_input(image, s).permute(1, 2, 0).numpy() for s in sizes}
        return PreparedImage(name=name, digest=key, label=label, thumbnail=_thumbnail(image),
                             original_size=image.size, pixels=pixels)


def _thumbnail(image: Image.Image) -> Image.Image:
    """At most THUMBNAIL pixels on the longest side, made without a full-size copy (Image.thumbnail copies)."""
    w, h = image.size
    if max(w, h) <= THUMBNAIL:
        return image
    scale = THUMBNAIL / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC,
                        reducing_gap=2.0)


# --------------------------------------------------------------------------- traces

@dataclass
class ImageRun:
    """One image through one model: the trace, and what every view reads from it."""

    trace: vitrm.Trace                 # batch of one
    pixels: np.ndarray                 # [H, W, 3] uint8, what the model saw
    class_names: tuple[str, ...]
    grid: int                          # patch grid side (z has grid*grid tokens)
    recursive: bool
    seconds: float                     # the trace, its wait for a batch included, for the curious

    @property
    def steps(self) -> int:
        return self.trace.steps

    @property
    def probs(self) -> np.ndarray:
        probs = self.trace.probs[:, 0].numpy()
        probs.flags.writeable = False          # shared by every session (run_image is a resource)
        return probs

    def __post_init__(self) -> None:
        _read_only(self)


@dataclass
class StateMaps:
    """The evolving-state view's maps and path of one ImageRun (``state_maps``)."""

    z_norm: np.ndarray                 # [S, g, g]
    z_change: np.ndarray               # [S, g, g] how far each patch's z moved in the step
    z_rgb: np.ndarray                  # [S, g, g, 3], PCA fitted once over all steps
    y_points: np.ndarray               # [S, 2]
    y_arrows: np.ndarray | None        # [C, 2] class directions in the same projection
    y_ratio: np.ndarray                # explained variance of the 2 components

    def __post_init__(self) -> None:
        _read_only(self)


def _read_only(shared) -> None:
    """Shared by every session (a cache resource): a write to one of its arrays fails loudly."""
    for value in vars(shared).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False


def _normalize(pixels: np.ndarray, config: vitrm.ModelConfig) -> torch.Tensor:
    """One image's pixels [H, W, 3] uint8 -> the model's input batch of one."""
    return vitrm.normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None], config.mean, config.std)


# Every session's new image is traced through this one batcher: images that arrive together share one batched
# trace (with twenty sessions at once on the 2-core machine, this more than halved each trace's cost).
_TRACES = vitrm.TraceBatcher()


def traced_steps(config: vitrm.ModelConfig, n: int) -> int:
    """How many steps to trace for a page showing N = ``n``: the default N (``vitrm.steps``) while ``n`` fits in
    it, else the most the app offers. Two sizes: N and the slider move within either with no model work, and a
    first page traces only the default N (half of the most, a third of a new image's page run on the 2-core
    machine)."""
    default = vitrm.steps.default_steps(config)
    return default if n <= default else vitrm.steps.max_steps(config)


@st.cache_resource(max_entries=128, show_spinner="Running the model through every step…")
def run_image(path: str, mtime: float, image_key: str, steps: int, _pixels: np.ndarray) -> ImageRun:
    model = load_model(path, mtime)
    config = model.config
    start = time.perf_counter()
    trace = _TRACES.trace(model, _normalize(_pixels, config), steps=steps if config.recursive else None)
    seconds = time.perf_counter() - start
    grid = int(round(trace.z.shape[2] ** 0.5))
    return ImageRun(trace=trace, pixels=_pixels.copy(), class_names=tuple(config.class_names), grid=grid,
                    recursive=config.recursive, seconds=seconds)


@st.cache_resource(max_entries=32, show_spinner=False)
def state_maps(path: str, mtime: float, image_key: str, steps: int, _pixels: np.ndarray) -> StateMaps:
    """``run_image``'s run, as the evolving-state view draws it: computed when that view is opened, not for every
    new image's first page."""
    run = run_image(path, mtime, image_key, steps, _pixels)
    z = run.trace.z[:, 0]
    y_points, y_arrows, y_ratio = derive.y_path(run.trace.y[:, 0],
                                                analysis.class_directions(load_model(path, mtime)))
    return StateMaps(z_norm=derive.z_norm_grid(z, run.grid), z_change=derive.z_change_grid(z, run.trace.z_init[0],
                                                                                           run.grid),
                     z_rgb=derive.z_pca_rgb(z, run.grid), y_points=y_points, y_arrows=y_arrows, y_ratio=y_ratio)


# --------------------------------------------------------------------------- attribution

@dataclass
class AttributionResult:
    method: str
    step: int
    target: int
    map: np.ndarray          # [H, W]
    seconds: float


@st.cache_data(max_entries=512, show_spinner=False)
def run_attribution(path: str, mtime: float, image_key: str, method: str, step: int,
                    target: int | None, _pixels: np.ndarray) -> AttributionResult:
    model = load_model(path, mtime)
    steps = step if model.config.recursive else None
    # captum itself is imported on the first attribution, not at cold start.
    result = vitrm.attribute(model, _normalize(_pixels, model.config), steps=steps, method=method, target=target)
    return AttributionResult(method=method, step=step, target=int(result.target[0]),
                             map=result.maps[0].numpy(), seconds=result.seconds)


# --------------------------------------------------------------------------- dataset images and evaluation

@st.cache_data(max_entries=512, show_spinner=False)
def dataset_thumbnail(path: str) -> Image.Image | None:
    """A dataset image for a gallery tile, or None when the file is missing or unreadable."""
    try:
        return vitrm.load_image(path)
    except vitrm.InvalidImageError:
        return None


@dataclass
class Evaluation:
    """metrics.json and predictions.csv of one model, read from its directory or computed here."""

    metrics: dict
    predictions: pd.DataFrame | None
    image_root: Path | None              # where predictions.csv's `path` column points
    computed_note: str | None = None     # set when computed in the app on a sample


@dataclass(frozen=True)
class SampleSource:
    root: Path
    description: str
    spec: str                            # recorded as metrics["data"]
    size: int                            # images available


@st.cache_data(max_entries=8, show_spinner=False)
def _listing(root: str, gallery: bool) -> tuple[list[str], list[str]]:
    """(paths relative to root, class names) of a test split or of the built-in gallery, in order."""
    if gallery:
        table = pd.read_csv(Path(root) / "labels.csv")
        return list(table["file"]), list(table["label"])
    folder = vitrm.paths.scan_imagefolder(Path(root) / "test")
    return ([Path(p).relative_to(root).as_posix() for p, _ in folder.samples],
            [folder.classes[t] for t in folder.targets])


def sample_source(files: checkpoints.CheckpointFiles) -> SampleSource | None:
    """The model's own test split when its data directory is here, else the built-in gallery."""
    spec = (files.train_config or {}).get("data") or (files.metrics or {}).get("data")
    root = checkpoints.data_root(spec)
    names = set(files.config.class_names)
    if root is not None and (root / "test").is_dir():
        paths, labels = _listing(str(root), gallery=False)
        if set(labels) <= names:
            return SampleSource(root=root, description=f"the test split of {root.name}", spec=str(spec),
                                size=len(paths))
    gallery = Path(__file__).resolve().parent / "gallery"
    paths, labels = _listing(str(gallery), gallery=True)
    if set(labels) <= names:
        return SampleSource(root=gallery, description="the app's built-in gallery (CIFAR-10 test images)",
                            spec=vitrm.GALLERY_SPEC, size=len(paths))
    return None


@st.cache_data(max_entries=8, show_spinner=False)
def evaluate_sample(path: str, mtime: float, source: SampleSource, k: int, _progress=None) -> Evaluation:
    """The evaluate command's pipeline (``vitrm.evaluate.evaluate_split``) on k images, at its default steps.

    ``_progress(fraction, text)`` is called while decoding and while tracing, batch by batch.
    """
    model = load_model(path, mtime)
    cfg = model.config
    report = _progress or (lambda fraction, text: None)
    all_paths, all_labels = _listing(str(source.root), gallery=source.spec == vitrm.GALLERY_SPEC)
    indices = analysis.evenly_spaced(len(all_paths), k)
    paths = [all_paths[i] for i in indices.tolist()]
    labels = torch.tensor([cfg.class_names.index(all_labels[i]) for i in indices.tolist()])
    images = torch.empty(len(paths), cfg.in_channels, cfg.image_size, cfg.image_size, dtype=torch.uint8)
    for i, p in enumerate(paths):
        images[i] = to_model_input(vitrm.load_image(source.root / p), cfg.image_size)
        if i % 20 == 0:
            report(0.3 * i / len(paths), f"Decoding images ({i}/{len(paths)})")
    steps = vitrm.steps.default_steps(cfg)
    metrics, table = vitrm.evaluate_split(
        model, vitrm.Split(images, labels, tuple(cfg.class_names), "test"), steps, source.spec, "test", indices, paths,
        batch_size=50, progress=lambda done, total: report(0.3 + 0.7 * done / total,
                                                           f"Running {steps} steps ({done}/{total} images)"))
    return Evaluation(metrics=metrics, predictions=table, image_root=source.root,
                      computed_note=f"computed in this session on {len(labels)} images from {source.description} "
                                    "(not saved; run python -m vitrm evaluate for the full test set)")
