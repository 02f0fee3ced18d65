"""The checkpoint directory format: safetensors plus JSON, written atomically, loaded safely.

    DIR/model.safetensors   weights (EMA weights when training used EMA)
    DIR/config.json         ViTRMConfig: architecture, class names, normalization, trained steps
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
import math
import os
import string
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import UserError
from .model import ViTRM, ViTRMConfig, num_parameters

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv.gz"
PREDICTIONS_CSV = "predictions.csv"     # the uncompressed name, still read
AVERAGED_FROM = "averaged_from.json"
MAX_PARAMETERS = 200_000_000      # a checkpoint asking for more is refused before allocation
# Small weights can still ask for huge work per image: attention is quadratic in the tokens,
# a trace keeps every attention map, and a CNN's first stage runs at full resolution.
MAX_TOKENS = 4096
MAX_ACTIVATION_BYTES = 2**30      # per image: one step's attention maps, or one CNN feature map
MAX_CONFIG_BYTES = 16 * 2**20     # config.json is read whole; a larger one is not a config
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


class CheckpointError(UserError):
    """A checkpoint cannot be used. The message names the file and what is wrong."""


# --------------------------------------------------------------------------- building

def build_model(config: ViTRMConfig) -> torch.nn.Module:
    from .baselines import CompactCNN, ViT
    archs = {"vitrm": ViTRM, "vit": ViT, "cnn": CompactCNN}
    if config.arch not in archs:
        raise CheckpointError(f"unknown architecture {config.arch!r}; expected one of {sorted(archs)}")
    return archs[config.arch](config)


def estimate_parameters(cfg: ViTRMConfig) -> int:
    """Parameter count from the config alone, to refuse huge models before allocating them."""
    if cfg.arch == "cnn":
        w = (cfg.in_channels,) + tuple(cfg.cnn_widths)
        return sum(9 * a * b * 2 + b * b for a, b in zip(w[:-1], w[1:])) + w[-1] * cfg.num_classes
    d, hidden = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
    per_layer = 4 * d * d + 2 * d * hidden + 10 * d
    tokens = cfg.num_tokens * d * (3 if cfg.arch == "vitrm" else 1)
    stem = cfg.in_channels * d * cfg.patch_size ** 2 + 9 * d * d
    return cfg.layers * per_layer + tokens + stem + d * (cfg.num_classes + 2)


# --------------------------------------------------------------------------- config validation

_INT_RANGES = {
    "image_size": (4, 1024), "in_channels": (1, 16), "num_classes": (2, 100_000),
    "patch_size": (1, 256), "dim": (4, 4096), "heads": (1, 64), "layers": (1, 512),
    "latent_updates": (0, 64), "trained_steps": (1, 1024), "conv_stages": (0, 8),
}


def config_from_dict(raw: object, source: str = CONFIG) -> ViTRMConfig:
    """Validate untrusted JSON and build a ViTRMConfig, or raise CheckpointError."""
    def bad(msg):
        return CheckpointError(f"{source}: {msg}")

    if not isinstance(raw, dict):
        raise bad(f"expected a JSON object, got {type(raw).__name__}")
    unknown = set(raw) - ViTRMConfig.field_names()
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}")
    for key, (lo, hi) in _INT_RANGES.items():
        if key in raw:
            v = raw[key]
            if not isinstance(v, int) or isinstance(v, bool):
                raise bad(f"{key} must be an integer, got {v!r}")
            if not lo <= v <= hi:
                raise bad(f"{key}={v} is outside the allowed range {lo}..{hi}")
    for key in ("arch", "tokenizer", "combine"):
        if key in raw and not isinstance(raw[key], str):
            raise bad(f"{key} must be a string, got {raw[key]!r}")
    for key in ("mlp_ratio", "dropout"):
        if key in raw and (not isinstance(raw[key], (int, float)) or isinstance(raw[key], bool)):
            raise bad(f"{key} must be a number, got {raw[key]!r}")
    if not 0 < float(raw.get("mlp_ratio", 2.0)) <= 16:
        raise bad("mlp_ratio must be in (0, 16]")
    if not 0 <= float(raw.get("dropout", 0.0)) < 1:
        raise bad("dropout must be in [0, 1)")
    for key, typ in (("class_names", str), ("mean", (int, float)), ("std", (int, float)), ("cnn_widths", int)):
        if key in raw:
            v = raw[key]
            if not isinstance(v, list) or not all(isinstance(e, typ) and not isinstance(e, bool) for e in v):
                raise bad(f"{key} must be a list of {getattr(typ, '__name__', 'numbers')}")
            if len(v) > 100_000:
                raise bad(f"{key} is too long")
    if "cnn_widths" in raw and not (raw["cnn_widths"] and all(1 <= w <= 4096 for w in raw["cnn_widths"])):
        raise bad("cnn_widths must be a non-empty list of widths between 1 and 4096")
    for key in ("mean", "std"):
        if key in raw and not all(math.isfinite(v) for v in raw[key]):
            raise bad(f"{key} values must be finite numbers")
    cfg = ViTRMConfig(**raw)
    if cfg.arch not in ("vitrm", "vit", "cnn"):
        raise bad(f"unknown architecture {cfg.arch!r}; expected one of ['cnn', 'vit', 'vitrm']")
    if cfg.tokenizer not in ("patch", "conv"):
        raise bad(f"unknown tokenizer {cfg.tokenizer!r}")
    if cfg.combine not in ("concat", "add"):
        raise bad(f"unknown combine {cfg.combine!r}")
    if len(cfg.class_names) != cfg.num_classes:
        raise bad(f"class_names has {len(cfg.class_names)} names but num_classes is {cfg.num_classes}")
    if len(cfg.mean) != cfg.in_channels or len(cfg.std) != cfg.in_channels:
        raise bad(f"mean and std need {cfg.in_channels} values each")
    if any(s <= 0 for s in cfg.std):
        raise bad("std values must be positive")
    if cfg.arch != "cnn":
        if cfg.image_size % cfg.patch_size:
            raise bad(f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")
        if cfg.dim % cfg.heads:
            raise bad(f"dim {cfg.dim} is not divisible by heads {cfg.heads}")
        if cfg.tokenizer == "conv" and (cfg.patch_size < 2 or cfg.patch_size & (cfg.patch_size - 1)):
            raise bad("the conv tokenizer needs patch_size to be a power of two, at least 2")
        if cfg.tokenizer == "conv" and 2 ** cfg.conv_stages > cfg.patch_size:
            raise bad(f"conv_stages={cfg.conv_stages} downsamples more than patch_size {cfg.patch_size}")
    if cfg.arch == "vitrm" and cfg.latent_updates < 1:
        raise bad("a ViTRM needs latent_updates of at least 1")
    estimate = estimate_parameters(cfg)
    if estimate > MAX_PARAMETERS:
        raise bad(f"the config asks for about {estimate:,} parameters, over the limit of {MAX_PARAMETERS:,}")
    if cfg.arch != "cnn" and cfg.num_tokens > MAX_TOKENS:
        raise bad(f"{cfg.num_tokens:,} tokens per image ({cfg.image_size}/{cfg.patch_size} squared), "
                  f"over the limit of {MAX_TOKENS:,}")
    activation = estimate_activation_bytes(cfg)
    if activation > MAX_ACTIVATION_BYTES:
        raise bad(f"one image would need about {activation / 2**30:.1f} GiB of activations per step, "
                  f"over the limit of {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB")
    return cfg


def estimate_activation_bytes(cfg: ViTRMConfig) -> int:
    """Largest per-image float32 tensors the config implies: the attention maps a trace keeps for
    one step (ViTRM), one layer's attention weights (ViT), or the full-resolution stage (CNN)."""
    if cfg.arch == "cnn":
        return 4 * cfg.image_size ** 2 * max(cfg.cnn_widths)
    T = cfg.num_tokens
    if cfg.arch == "vit":
        return 4 * cfg.heads * (T + 1) ** 2
    latent_len = 2 * T + 1 if cfg.combine == "concat" else T + 1
    return 4 * cfg.layers * cfg.heads * (cfg.latent_updates * latent_len ** 2 + (T + 1) ** 2)


def read_config(path: str | os.PathLike) -> ViTRMConfig:
    path = Path(path)
    file = path / CONFIG
    if not file.is_file():
        raise CheckpointError(f"{file}: missing config.json")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{file}: {file.stat().st_size:,} bytes is far too large for a config")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
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
    path = Path(path)
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
    if saved_with is not None and _comparable(saved_with) != _comparable(json.dumps(config.to_dict())):
        raise CheckpointError(f"{weights}: saved with a different config.json than the one beside it "
                              "(an interrupted save, or an edited config.json); only class_names may be edited")
    model.load_state_dict(state)
    return model.to(device).eval()


def _comparable(config_json: str) -> dict | None:
    """A config as JSON data without class names, which may be relabelled after saving."""
    try:
        config = json.loads(config_json)
    except (ValueError, RecursionError):
        return None
    return {k: v for k, v in config.items() if k != "class_names"} if isinstance(config, dict) else None


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
    path = Path(path)
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
    file = Path(path) / METRICS
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None


def predictions_file(path: str | os.PathLike) -> Path | None:
    """The per-image table of a checkpoint directory (predictions.csv.gz, else predictions.csv), or None."""
    for name in (PREDICTIONS, PREDICTIONS_CSV):
        if (Path(path) / name).is_file():
            return Path(path) / name
    return None


def read_predictions(path: str | os.PathLike):
    """The per-image table written by ``python -m vitrm evaluate`` as a pandas DataFrame, or None."""
    import pandas as pd
    file = predictions_file(path)
    return None if file is None else pd.read_csv(file)


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
    """
    stages, k = [], 1
    while (Path(path) / f"stage{k}").is_dir():
        stages.append(Path(path) / f"stage{k}")
        k += 1
    return stages


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
        runs.append(candidate)
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
