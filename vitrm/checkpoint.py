"""The checkpoint directory format: safetensors plus JSON, written atomically, loaded safely.

    DIR/model.safetensors   weights (EMA weights when training used EMA)
    DIR/config.json         the model config (ViTRMConfig, ViTConfig or CNNConfig, named by its "arch"):
                            architecture, class names, normalization, trained steps
    DIR/metrics.json        written by ``python -m vitrm evaluate``
    DIR/predictions.csv.gz  per-image table (gzip of a CSV), written by evaluate; older
                            checkpoints hold it uncompressed as predictions.csv
    DIR/train_log.csv       one row per epoch, written by train
    DIR/README.md           model card
    DIR/averaged_from.json  written by ``average``: the runs whose weights were averaged into DIR

Loading never unpickles: only safetensors and JSON are read, and ``config.json`` is
validated (types, ranges, unknown keys, a parameter budget) before any weight is allocated,
so a hostile checkpoint can neither run code nor exhaust memory.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import string
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import (  # noqa: F401 - the limits are part of the checkpoint format's contract
    MAX_ACTIVATION_BYTES,
    MAX_PARAMETERS,
    MAX_TOKENS,
    ConfigError,
    arch_of,
    architecture,
    config_classes,
    estimate_activation_bytes,
    estimate_parameters,
    parse_model_config,
)
from .errors import UserError
from .model import ModelConfig, num_parameters

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv.gz"
PREDICTIONS_CSV = "predictions.csv"     # the uncompressed name, still read
AVERAGED_FROM = "averaged_from.json"
MAX_STAGES = 16                   # stage folders (stage1, ..., stage5b) one checkpoint may carry; the flagship has 5
MAX_CONFIG_BYTES = 16 * 2**20     # config.json is read whole; a larger one is not a config
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


class CheckpointError(UserError):
    """A checkpoint cannot be used. The message names the file and what is wrong."""


# --------------------------------------------------------------------------- building

def build_model(config: ModelConfig) -> torch.nn.Module:
    """The untrained model of ``config``'s architecture (the architecture table's ``model``)."""
    try:
        cls = architecture(config.arch).model_class()
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return cls(config)


# --------------------------------------------------------------------------- config validation

def config_from_dict(raw: object, source: str = CONFIG) -> ModelConfig:
    """Untrusted JSON -> the config of its architecture that passes every rule of ``vitrm.config``,
    or CheckpointError."""
    try:
        return parse_model_config(raw)
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None


def checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or CheckpointError when it is no usable path (a NUL byte, 6,000 characters)."""
    from .paths import UnsafePathError, check_text
    try:
        return Path(check_text(path))
    except UnsafePathError as e:
        raise CheckpointError(str(e)) from None


def read_config(path: str | os.PathLike, budget=None) -> ModelConfig:
    """``config.json`` validated; read through the side-file gate (``vitrm.sidefiles.read_bounded``: a size cap,
    no link out of the checkpoint), charged to the checkpoint's ``budget`` when the caller reads its files as one."""
    from .sidefiles import read_bounded
    path = checkpoint_path(path)
    file = path / CONFIG
    data = read_bounded(file, MAX_CONFIG_BYTES, budget)
    if data is None:
        raise CheckpointError(f"{file}: missing config.json")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:   # ValueError covers JSONDecodeError and 5000-digit ints
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{file}: not valid JSON (nested too deeply)") from None
    return config_from_dict(raw, str(file))


# --------------------------------------------------------------------------- loading

def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a checkpoint directory into a ready model in eval mode.

    Reads only ``config.json`` and ``model.safetensors``. Raises ``CheckpointError`` for a
    missing directory or file, invalid config, corrupt or mismatched weights, or a directory
    that holds only pickles (which are never opened). Weights saved by ``save`` carry their
    config; a config.json that differs from it other than in ``class_names`` is refused.
    """
    path = checkpoint_path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory")
    weights = path / WEIGHTS
    if not weights.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                f"{weights}: missing. The directory holds only pickle files ({', '.join(pickles)}), "
                "which are never loaded because unpickling can run arbitrary code. "
                "Convert them to safetensors in a trusted environment.")
        raise CheckpointError(f"{weights}: missing model.safetensors")
    config = read_config(path)
    try:
        with safe_open(str(weights), framework="pt") as f:
            saved_with = (f.metadata() or {}).get("config")
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: corrupt or truncated safetensors file ({e})") from None
    model = build_model(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{weights}: weights do not match config.json "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for k, v in expected.items():
        if state[k].shape != v.shape or state[k].dtype != v.dtype:
            raise CheckpointError(f"{weights}: tensor {k!r} has shape {tuple(state[k].shape)} "
                                  f"{state[k].dtype}, config.json implies {tuple(v.shape)} {v.dtype}")
    for k, v in state.items():
        # NaN or infinite weights load "fine" and then print "nan" classes or break a view's linear algebra.
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{weights}: tensor {k!r} holds non-finite values (NaN or infinity)")
    if saved_with is not None and _comparable(saved_with) != _comparable(json.dumps(config.to_dict())):
        raise CheckpointError(f"{weights}: saved with a different config.json than the one beside it "
                              "(an interrupted save, or an edited config.json); only class_names may be edited")
    model.load_state_dict(state)
    return model.to(device).eval()


def _comparable(config_json: str) -> dict | None:
    """A config as JSON data, in the fields its architecture reads, without class names (which may be
    relabelled after saving).

    A field the config does not name holds its default, as it does when the config is loaded: weights
    saved before a field existed (``conv_stages``) still match a config.json that now spells it out.
    Fields the architecture does not read are left out: weights saved when every architecture's config
    carried every field (the shipped baselines') match the config.json of their own architecture.
    """
    try:
        config = json.loads(config_json)
    except (ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    arch = arch_of(config)
    cls = config_classes().get(arch) if isinstance(arch, str) else None
    if cls is None:
        return config
    full = json.loads(json.dumps(cls().to_dict())) | config
    read = cls.field_names() - {"class_names"}
    return {k: v for k, v in full.items() if k == "arch" or k in read}


# --------------------------------------------------------------------------- saving

def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 and save_file keeps it; checkpoints are meant to be shared
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into the directory ``path``.

    Each file is written to a temporary file beside it, fsynced and renamed over the old
    one, so a crash at any moment leaves the old or the new file, never a half-written one.
    The weights go first: they are validated against the config on load, so a crash between
    the two renames is detected rather than silently mixing versions. Other files in the
    directory (metrics, logs, the model card) are kept.
    """
    path = checkpoint_path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path}: exists and is not a directory; a checkpoint is a directory")
    path.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    # The config rides along in the weights' metadata, so that load can tell a crash between
    # the two renames (new weights, old config.json) from a checkpoint saved as one.
    save_tensors(model.state_dict(), path / WEIGHTS,
                 metadata={"arch": config["arch"], "parameters": str(num_parameters(model)),
                           "config": json.dumps(config)})
    text = json.dumps(config, indent=2) + "\n"
    config_file = path / CONFIG
    if not (config_file.is_file() and config_file.read_text(encoding="utf-8") == text):
        atomic_write_bytes(config_file, text.encode())
    return path


def read_metrics(path: str | os.PathLike) -> dict | None:
    """``metrics.json`` validated against config.json (``vitrm.sidefiles``), or None when there is none."""
    from .sidefiles import read_metrics as read
    return read(path)


def predictions_file(path: str | os.PathLike) -> Path | None:
    """The per-image table of a checkpoint directory (predictions.csv.gz, else predictions.csv), or None."""
    for name in (PREDICTIONS, PREDICTIONS_CSV):
        if (Path(path) / name).is_file():
            return Path(path) / name
    return None


def read_predictions(path: str | os.PathLike):
    """The per-image table written by ``python -m vitrm evaluate`` as a pandas DataFrame, or None; validated
    against config.json and metrics.json (``vitrm.sidefiles``), so a damaged one is a CheckpointError."""
    from .sidefiles import read_metrics as metrics_of, read_predictions as read
    metrics = metrics_of(path)
    return read(path, read_config(path).num_classes, len(metrics["top1_by_step"]) if metrics else None)


def write_predictions(path: str | os.PathLike, table) -> Path:
    """Write the per-image table as predictions.csv.gz, byte-for-byte reproducible, replacing any older table.

    The CSV inside is exactly what the uncompressed format held (floats to 6 significant digits);
    the gzip header carries no time stamp, so the same table always gives the same file.
    """
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.6g")
    file = Path(path) / PREDICTIONS
    atomic_write_bytes(file, gzip.compress(buf.getvalue().encode(), compresslevel=9, mtime=0))
    (Path(path) / PREDICTIONS_CSV).unlink(missing_ok=True)
    return file


def earlier_stages(path: str | os.PathLike) -> list[Path]:
    """The directories of a staged run's earlier stages, in order: ``stage1/``, ``stage2/``, ...

    A run trained in stages, each a warm start (``init_from``) from the one before, ships its
    last stage at the top level and keeps every earlier stage's resolved config and log in
    ``stageK/`` beside it, so the whole history stays readable.

    A checkpoint may come from a stranger: more than ``MAX_STAGES`` folders, or one that is a link
    leading out of the checkpoint, is a CheckpointError (the probe's 100 stage folders linking one
    16 MB log took 33 s and 9.4 GB to show).
    """
    stages, k = [], 1
    while (Path(path) / f"stage{k}").is_dir():
        if k > MAX_STAGES:
            raise CheckpointError(f"{path}: more than {MAX_STAGES} stage folders; the training history is not read")
        stages.append(_inside(path, Path(path) / f"stage{k}"))
        k += 1
    return stages


def _inside(path: str | os.PathLike, folder: Path) -> Path:
    from .paths import is_inside
    if not is_inside(folder, [path]):
        raise CheckpointError(f"{folder}: a link that leads outside the checkpoint, not followed")
    return folder


def averaged_runs(path: str | os.PathLike) -> list[Path]:
    """The other runs of a last stage whose weights were averaged into this checkpoint, in order.

    The run at the top level is the first; each other run trained side by side from the same
    weights keeps its resolved config and log in ``stage{K}b/``, ``stage{K}c/``, ..., where K is
    the last stage's number (1 for a run in one stage).
    """
    last = len(earlier_stages(path)) + 1
    runs = []
    for letter in string.ascii_lowercase[1:]:
        candidate = Path(path) / f"stage{last}{letter}"
        if not candidate.is_dir():
            break
        if last + len(runs) > MAX_STAGES:         # the folders with this one: last - 1 + len(runs) + 1
            raise CheckpointError(f"{path}: more than {MAX_STAGES} stage folders; the training history is not read")
        runs.append(_inside(path, candidate))
    return runs


def average(sources: list[str | os.PathLike], out: str | os.PathLike, command: list[str] | None = None) -> Path:
    """Write the uniform mean of several checkpoints' weights to ``out`` (a "model soup").

    The mean of two networks is only a good network when they lie in one basin, which in practice
    means runs warm-started from the same weights; that is the caller's to know. The sources must
    share one architecture (their config.json may differ only in class names, which are taken from
    the first). ``out/averaged_from.json`` records the sources. Other files in ``out`` are kept,
    except ``metrics.json`` and the per-image table, which described the weights replaced here.
    ``command``, the argv that asked for the average, is recorded beside the sources.
    """
    if len(sources) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    out = checkpoint_path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a directory; --out names the checkpoint directory to write")
    models = [load(s) for s in sources]
    first = _comparable(json.dumps(models[0].config.to_dict()))
    for source, model in zip(sources[1:], models[1:]):
        if _comparable(json.dumps(model.config.to_dict())) != first:
            raise CheckpointError(f"{source}: its config.json differs from {sources[0]}'s; only checkpoints "
                                  "of one architecture can be averaged")
    states = [m.state_dict() for m in models]
    # Integer buffers are counters (BatchNorm's num_batches_tracked), not weights: the first run's is kept.
    mean = {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()}
    models[0].load_state_dict(mean)
    save(models[0], out)
    for stale in (METRICS, PREDICTIONS, PREDICTIONS_CSV):
        (Path(out) / stale).unlink(missing_ok=True)
    atomic_write_json(Path(out) / AVERAGED_FROM, {"method": "uniform mean of the weights",
                                                 "sources": [str(s) for s in sources]}
                      | ({"command": list(command)} if command else {}))
    return Path(out)
