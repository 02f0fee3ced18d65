"""Open a model trained with the paper's public code: its ``best.pt`` -> a ViTRM Lab checkpoint.

    python -m vitrm import-reference best.pt --out checkpoints/mine [--class-names names.txt]

That code saves ``torch.save({"config": {"dataset": {...}, "model": {...}, "training": {...}},
"model_state": state_dict, "epoch": ..., "test_accuracy": ..., "test_f1": ...})``. Its model is
the variant of ``vitrm.model`` that the fields mlp="swiglu", block_norm=False, head_norm=False and
combine="concat" with type_embed=False describe, and its weights map one to one:

    theirs                                  ours
    patch_embed.proj (strided Conv2d)       tokenizer (tokenizer="patch")
    patch_embed.pos_embed [1, L, D]         pos
    y_init [1, 1, D], z_init [1, L, D]      y_init [D], z_init [L, D]
    block.layers.i.norm1, norm2             the same
    block.layers.i.attn.in_proj_*           block.layers.i.attn.qkv (both pack q, k, v in that order)
    block.layers.i.attn.out_proj            block.layers.i.attn.proj
    block.layers.i.mlp: Linear(D, 2H), Linear(H, D), told apart by their shapes   mlp.0, mlp.3
    cls_head, halt_head                     head, halt_head

Its config keys become ours: in_chans -> in_channels, num_heads -> heads, mlp_hidden_dim -> mlp_hidden,
n_latent_steps -> latent_updates, t_deep (the steps it answers with) -> trained_steps, dropout.
n_supervision, halt_threshold, latent_dropout and token_dropout shape its training, not the function a
trained model computes; the card records them. Normalization is the dataset section's mean and std
when it names them, else CIFAR-10's, which that code uses for CIFAR-100 too.

The file is untrusted. It is read by ``torch.load(weights_only=True)``, which builds tensors, plain
containers and numbers and refuses any other object (a pickled callable never runs), with numpy's
scalars allowed too (a metric computed with numpy is one). A file over ``MAX_SOURCE_BYTES`` is not
opened. Every key, type and shape is checked, and the config passes ``vitrm.config``'s rules, before
anything is written; a refusal is one line (``ReferenceError``) and leaves ``--out`` as it was.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import re
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import ConfigError, parse_model_config
from .errors import UserError
from .model import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, ViTRM, ViTRMConfig

MAX_SOURCE_BYTES = 2**30          # ckpt.MAX_PARAMETERS float32 weights need 800 MB; anything larger is not one
MAX_NAMES_BYTES = 2**20           # a --class-names file
NOTES = "NOTES.md"                # the card's notes (vitrm.card appends them): where the weights came from

# torchvision's CIFAR100.classes: the fine label names in label order (the dataset's meta file; alphabetical).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
DATASETS = {"cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES}
# What a numpy number (an accuracy or F1 computed with numpy) pickles as: data, built without running code.
NUMPY_SCALARS = [np._core.multiarray.scalar, np.dtype, *(getattr(np.dtypes, f"{kind}DType") for kind in (
    "Float16", "Float32", "Float64", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Bool"))]

# The model section's keys: those that decide the function, then those that only shape training.
REQUIRED_KEYS = ("image_size", "patch_size", "in_chans", "dim", "num_heads", "mlp_hidden_dim", "n_latent_steps",
                 "t_deep")
TRAINING_KEYS = ("n_supervision", "halt_threshold", "dropout", "latent_dropout", "token_dropout")
OPTIONAL_KEYS = (*TRAINING_KEYS, "num_classes")


class ReferenceError(UserError):  # noqa: A001 - the module's own error, named like the others
    """A source file cannot be imported; the message is one line naming the file and the reason."""


# --------------------------------------------------------------------------- reading the file

def read_source(path: str | Path) -> dict:
    """The dict ``torch.save`` wrote, read without running any code in the file, or ReferenceError."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise ReferenceError(f"{path}: {size:,} bytes is over the limit of {MAX_SOURCE_BYTES:,} for a checkpoint "
                             "of a model this small")
    try:
        # weights_only: the unpickler builds tensors, containers and numbers, and refuses every other global
        # (os.system, a class of the training code) without calling it. numpy's scalars are data too.
        with torch.serialization.safe_globals(NUMPY_SCALARS):
            source = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:   # any refusal or corruption, described in one line
        raise ReferenceError(f"{path}: refused: {_why(e)}; only tensors, containers and numbers are read, "
                             "so a file that carries code or other objects is never loaded") from None
    if not isinstance(source, dict):
        raise ReferenceError(f"{path}: expected the dict the paper's code saves, got {type(source).__name__}")
    return source


def _why(error: Exception) -> str:
    """torch's reason in one line: the object it refused to build, else the unpickler's own words (torch's
    advice around them, to load the file with weights_only=False, is exactly what must not be done)."""
    text = str(error)
    refused = re.search(r"GLOBAL (\S+)", text) or re.search(r"but got <class '([^']+)'>", text)
    if refused:
        return f"it asks for {refused.group(1)}, which this reader never builds"
    advice = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
    lines = [line.strip().removeprefix("WeightsUnpickler error:").strip() for line in text.splitlines()]
    said = [line for line in lines if line and not line.startswith(advice)] or [type(error).__name__]
    return f"not a readable torch checkpoint ({said[0][:200]})"


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the config

def _section(raw: dict, key: str, where: str) -> dict:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise ReferenceError(f"{where}: {key!r} must be a dict, got {type(value).__name__}")
    return value


def _int(section: dict, key: str, where: str) -> int:
    value = section.get(key)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ReferenceError(f"{where}: config.model.{key} must be an integer, got {value!r}"[:300])
    return int(value)


def _number(section: dict, key: str, where: str, default: float | None = None) -> float | None:
    value = section.get(key, default)
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ReferenceError(f"{where}: {key} must be a finite number, got {value!r}"[:300])
    return float(value)


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """One class name per line (blank lines at the end ignored), or ReferenceError."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: no such file (--class-names)")
    if path.stat().st_size > MAX_NAMES_BYTES:
        raise ReferenceError(f"{path}: over {MAX_NAMES_BYTES:,} bytes; --class-names takes one name per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ReferenceError(f"{path}: not UTF-8 text (--class-names)") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = tuple(line.strip() for line in lines)
    if not all(names):
        raise ReferenceError(f"{path}: line {names.index('') + 1} is blank; each line names one class")
    return names


def config_from(source: dict, num_classes: int, layers: int, where: str,
                class_names: tuple[str, ...] | None = None) -> ViTRMConfig:
    """The ViTRM config computing what the source's model computes, checked by ``vitrm.config``'s rules."""
    config = _section(source, "config", where)
    model, dataset = _section(config, "model", f"{where}: config"), _section(config, "dataset", f"{where}: config")
    unknown = sorted(set(model) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS), key=str)
    if unknown:
        raise ReferenceError(f"{where}: config.model has keys this importer does not know ({unknown[:5]}), so it "
                             "cannot tell that their model computes what ours would"[:400])
    ints = {key: _int(model, key, where) for key in REQUIRED_KEYS}
    if "num_classes" in model and _int(model, "num_classes", where) != num_classes:
        raise ReferenceError(f"{where}: config.model.num_classes is {model['num_classes']} but cls_head has "
                             f"{num_classes} rows")
    names = class_names or _dataset_classes(dataset, where)
    if len(names) != num_classes:
        raise ReferenceError(f"{where}: {len(names)} class names for a cls_head of {num_classes} classes")
    mean, std = _normalization(dataset, ints["in_chans"], where)
    dim, hidden = ints["dim"], ints["mlp_hidden_dim"]
    raw = dict(arch="vitrm", image_size=ints["image_size"], in_channels=ints["in_chans"], num_classes=num_classes,
               class_names=list(names), mean=list(mean), std=list(std), tokenizer="patch",
               patch_size=ints["patch_size"], dim=dim, heads=ints["num_heads"],
               mlp_ratio=max(round(hidden / dim, 4), 1e-4) if dim > 0 else 1.0, mlp_hidden=hidden, layers=layers,
               latent_updates=ints["n_latent_steps"], combine="concat", trained_steps=ints["t_deep"],
               dropout=_number(model, "dropout", where, 0.0), mlp="swiglu", block_norm=False, head_norm=False,
               type_embed=False)
    try:
        return parse_model_config(raw)
    except ConfigError as e:
        raise ReferenceError(f"{where}: its config maps to one that ViTRM Lab refuses: {e}") from None


def _dataset_classes(dataset: dict, where: str) -> tuple[str, ...]:
    name = dataset.get("name")
    if name not in DATASETS:
        raise ReferenceError(f"{where}: config.dataset.name is {name!r}"[:200] + f", not one of {sorted(DATASETS)}; "
                             "pass --class-names FILE (one name per line, in label order)")
    return DATASETS[name]


def _normalization(dataset: dict, channels: int, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The dataset section's mean and std when it names them, else CIFAR-10's (the paper's code's, for both)."""
    if "mean" not in dataset and "std" not in dataset:
        if channels != len(CIFAR10_MEAN):
            raise ReferenceError(f"{where}: {channels} input channels and no mean and std in config.dataset")
        return CIFAR10_MEAN, CIFAR10_STD
    values = []
    for key in ("mean", "std"):
        v = dataset.get(key)
        if isinstance(v, torch.Tensor):
            v = v.tolist()
        if not (isinstance(v, (list, tuple)) and len(v) == channels
                and all(isinstance(e, numbers.Real) and not isinstance(e, bool) for e in v)):
            raise ReferenceError(f"{where}: config.dataset.{key} must be {channels} numbers")
        values.append(tuple(float(e) for e in v))
    return values[0], values[1]


# --------------------------------------------------------------------------- the weights

_LAYER = re.compile(r"block\.layers\.(\d+)\.(.+)")
_PREFIXES = ("module.", "_orig_mod.")      # what DistributedDataParallel and torch.compile put before every name


def _state(source: dict, where: str) -> dict[str, torch.Tensor]:
    state = source.get("model_state")
    if not isinstance(state, dict) or not state:
        raise ReferenceError(f"{where}: 'model_state' must be a non-empty dict of tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ReferenceError(f"{where}: model_state holds {str(key)[:80]!r}: {type(value).__name__}, "
                                 "not a floating-point tensor")
        if not bool(torch.isfinite(value).all()):
            raise ReferenceError(f"{where}: tensor {key[:80]!r} holds non-finite values (NaN or infinity)")
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    return state


def _layer_count(state: dict[str, torch.Tensor], where: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := _LAYER.fullmatch(k))}
    if not indices or indices != set(range(len(indices))):
        raise ReferenceError(f"{where}: model_state's block.layers.N are not numbered 0..k-1 "
                             f"({sorted(indices)[:10]})")
    return len(indices)


def map_state(state: dict[str, torch.Tensor], cfg: ViTRMConfig, where: str) -> dict[str, torch.Tensor]:
    """The source's weights under our names and shapes (the table in the module docstring), every shape checked."""
    D, T, H, C = cfg.dim, cfg.num_tokens, cfg.mlp_hidden, cfg.num_classes
    p, c = cfg.patch_size, cfg.in_channels
    # (their name, the shape it must have, our name)
    plan = [("patch_embed.proj.weight", (D, c, p, p), "tokenizer.weight"),
            ("patch_embed.proj.bias", (D,), "tokenizer.bias"), ("patch_embed.pos_embed", (1, T, D), "pos"),
            ("y_init", (1, 1, D), "y_init"), ("z_init", (1, T, D), "z_init"),
            ("cls_head.weight", (C, D), "head.weight"), ("cls_head.bias", (C,), "head.bias"),
            ("halt_head.weight", (1, D), "halt_head.weight"), ("halt_head.bias", (1,), "halt_head.bias")]
    for i in range(cfg.layers):
        theirs, ours = f"block.layers.{i}.", f"block.layers.{i}."
        for norm in ("norm1", "norm2"):
            plan += [(f"{theirs}{norm}.weight", (D,), f"{ours}{norm}.weight"),
                     (f"{theirs}{norm}.bias", (D,), f"{ours}{norm}.bias")]
        plan += [(f"{theirs}attn.in_proj_weight", (3 * D, D), f"{ours}attn.qkv.weight"),
                 (f"{theirs}attn.in_proj_bias", (3 * D,), f"{ours}attn.qkv.bias"),
                 (f"{theirs}attn.out_proj.weight", (D, D), f"{ours}attn.proj.weight"),
                 (f"{theirs}attn.out_proj.bias", (D,), f"{ours}attn.proj.bias")]
        expand, contract = _mlp_linears(state, theirs + "mlp.", D, H, where)
        plan += [(f"{expand}.weight", (2 * H, D), f"{ours}mlp.0.weight"),
                 (f"{expand}.bias", (2 * H,), f"{ours}mlp.0.bias"),
                 (f"{contract}.weight", (D, H), f"{ours}mlp.3.weight"),
                 (f"{contract}.bias", (D,), f"{ours}mlp.3.bias")]
    unknown = sorted(set(state) - {theirs for theirs, _, _ in plan})
    if unknown:
        raise ReferenceError(f"{where}: model_state holds tensors the paper's model does not have: {unknown[:5]}"[:400])
    mapped = {}
    for theirs, shape, ours in plan:
        if theirs not in state:
            raise ReferenceError(f"{where}: model_state lacks {theirs!r}")
        if tuple(state[theirs].shape) != shape:
            raise ReferenceError(f"{where}: {theirs!r} has shape {tuple(state[theirs].shape)}, "
                                 f"its config implies {shape}")
        mapped[ours] = state[theirs].float()
    mapped["y_init"] = mapped["y_init"].reshape(D)
    mapped["z_init"] = mapped["z_init"].reshape(T, D)
    return mapped


def _mlp_linears(state: dict, prefix: str, D: int, H: int, where: str) -> tuple[str, str]:
    """The names of a layer's two MLP Linears (Linear(D, 2H), then Linear(H, D)), told apart by their weights'
    shapes, which differ for any D and H: the code is free to call them mlp.0 and mlp.3, fc1 and fc2, ..."""
    weights = {k.removesuffix(".weight"): tuple(v.shape) for k, v in state.items()
               if k.startswith(prefix) and k.endswith(".weight")}
    expand = [name for name, shape in weights.items() if shape == (2 * H, D)]
    contract = [name for name, shape in weights.items() if shape == (D, H)]
    if len(weights) != 2 or len(expand) != 1 or len(contract) != 1:
        raise ReferenceError(f"{where}: {prefix[:-1]} should hold two Linear weights, [{2 * H}, {D}] and [{D}, {H}] "
                             f"(mlp_hidden_dim {H}), found {sorted(weights.items())[:4]}"[:400])
    return expand[0], contract[0]


# --------------------------------------------------------------------------- the import

def import_reference(src: str | Path, out: str | Path, class_names: str | Path | None = None) -> Path:
    """Read ``src`` (the paper's ``best.pt``), check it all, then write the checkpoint directory ``out``:
    model.safetensors and config.json (``vitrm.checkpoint.save``), NOTES.md on where it came from, and the
    model card README.md (``vitrm.card``) that appends them. Refused before anything is written when ``out``
    already holds files."""
    src, out = Path(src), ckpt.checkpoint_path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReferenceError(f"{out}: already exists and is not an empty directory; choose another --out")
    names = read_class_names(class_names) if class_names is not None else None
    source = read_source(src)
    where = str(src)
    state = _state(source, where)
    head = state.get("cls_head.weight")
    if head is None or head.dim() != 2:
        raise ReferenceError(f"{where}: model_state lacks a 2-D 'cls_head.weight'")
    cfg = config_from(source, head.shape[0], _layer_count(state, where), where, names)
    model = ViTRM(cfg)
    model.load_state_dict(map_state(state, cfg, where))
    figures = {key: _number(source, key, where) for key in ("test_accuracy", "test_f1", "epoch")}
    notes = _notes(src, source, cfg, figures)
    ckpt.save(model.eval(), out)
    ckpt.atomic_write_bytes(out / NOTES, notes.encode())
    from .card import render_card  # card imports the training module; only an import needs it
    ckpt.atomic_write_bytes(out / "README.md", render_card(out, hardware="").encode())
    return out


def _notes(src: Path, source: dict, cfg: ViTRMConfig, figures: dict) -> str:
    """Where the weights came from, for the card (``vitrm.card`` appends NOTES.md as the card's notes)."""
    model, dataset = source["config"]["model"], source["config"]["dataset"]
    where = str(src)
    reported = ", ".join(f"{label} {_figure(figures[key])}" for key, label in
                         (("test_accuracy", "test accuracy"), ("test_f1", "test F1"), ("epoch", "epoch"))
                         if figures[key] is not None) or "none"
    data = (f"`{dataset['name']}`" if dataset.get("name") in DATASETS and cfg.class_names == DATASETS[dataset["name"]]
            else "classes named by --class-names")
    norm = ("the source's config.dataset mean and std" if "mean" in dataset
            else "CIFAR-10's mean and std, as the paper's code uses for both CIFAR-10 and CIFAR-100")
    training = ", ".join(f"{key}={_figure(_number(model, key, where))}" for key in TRAINING_KEYS if key in model)
    lines = [
        "Imported with `python -m vitrm import-reference` from a checkpoint saved by the paper's public training "
        "code; the weights are the source's, unchanged.", "",
        f"- Source file: `{_plain(src.name)}`, sha256 `{sha256(src)}`.",
        f"- The source's own figures, as it reports them: {reported}. Chosen on the test set by the paper's code "
        "(best test epoch), not comparable with ViTRM Lab's validation-chosen figures.",
        f"- Data: {data}; inputs normalized with {norm}: mean {list(cfg.mean)}, std {list(cfg.std)}.",
        f"- Architecture: the paper's code's variant: SwiGLU MLP of width {cfg.mlp_hidden}, no closing LayerNorm in "
        "the block, no LayerNorm before the heads, latent updates over x, y and z with no type embedding; it "
        f"answers after t_deep = {cfg.trained_steps} steps (the trained step count here).",
        f"- Its training settings (they shaped training, not what the weights compute): {training or 'not recorded'}.",
    ]
    return "\n".join(lines) + "\n"


def _figure(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


def _plain(text: str, limit: int = 200) -> str:
    """A name from the outside, safe inside a markdown code span: printable, no backticks, bounded."""
    return "".join(ch for ch in text if ch.isprintable() and ch != "`")[:limit] or "?"
