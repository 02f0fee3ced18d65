"""Every rule about a config, in one place: the schema, the per-architecture rules, the budget.

Each architecture has one config dataclass, saved as ``config.json`` with its ``arch``, and
holding only the fields that architecture reads; all share ``ModelConfig``'s
(image_size, in_channels, num_classes, class_names, mean, std):

    vitrm   ViTRMConfig (vitrm.model): tokenizer, patch_size, conv_stages (conv tokenizer), dim, heads,
            mlp_ratio, layers (k), latent_updates (n), combine, trained_steps (N), dropout; and the
            paper's code's variant: mlp, mlp_hidden, block_norm, head_norm, type_embed (their defaults
            are the default architecture, so a config written before they existed means what it did)
    vit     ViTConfig (vitrm.baselines): the same but latent_updates and combine; trained_steps is 1
    cnn     CNNConfig (vitrm.baselines): cnn_widths; trained_steps is 1

A key the architecture does not read is refused, not ignored: a CNN config with a ``dim``, or
a ViT config with ``latent_updates``, says something its model would not do. A config without
``arch`` is a ViTRM's.

One exception, read-only: before each architecture had its own class, one config class served
them all, and every config it wrote (config.json, a run's train_config.json, the config saved
with the weights) names every one of its fields (``LEGACY_FIELDS``; ``conv_stages`` came later).
A config that names all of them is read in that layout: the fields its architecture does not
read are dropped, as that code ignored them. The variant fields came after that layout was gone,
so a config that names them is always a config of today. Anything short of the whole layout is a config of
today, where such a field is an error.

Three callers, one set of rules:

* ``vitrm.load`` (``checkpoint.config_from_dict``) parses untrusted ``config.json``:
  ``parse_model_config`` picks the class from ``arch``, checks types, ranges and unknown keys,
  then ``check_model`` and ``check_budget``, before a single weight is allocated;
* training configs and the command line (``vitrm.train.load_train_config``, ``--set``) parse
  with ``parse_dataclass``, which hands the ``model`` section to ``parse_model_config``;
* ``ViTRM(config)``, ``ViT(config)`` and ``CompactCNN(config)`` call ``check_model`` on a
  config built in code.
"""

from __future__ import annotations

import dataclasses
import math

from .errors import UserError
from .steps import MAX_TRAINED_STEPS


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One row of the architecture table (timm's registry idea): how an ``arch`` is named, built and run.

    The classes are named, not imported: the model modules import this one for its rules.
    """

    name: str          # config.json's "arch"
    title: str         # how people are told (model cards, the app)
    config: str        # "module:Class" of its config dataclass, inside the vitrm package
    model: str         # "module:Class" of its torch module
    recursive: bool    # answers after any number of steps (``steps=``), or in one pass

    def config_class(self) -> type:
        return _resolve(self.config)

    def model_class(self) -> type:
        return _resolve(self.model)


def _resolve(where: str) -> type:
    import importlib
    module, name = where.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), name)


# Every architecture there is; building, validation, naming and the default read this table alone.
ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("vitrm", "ViTRM (one shared block applied recursively)", "model:ViTRMConfig", "model:ViTRM",
                 recursive=True),
    Architecture("vit", "ViT baseline (unshared layers)", "baselines:ViTConfig", "baselines:ViT", recursive=False),
    Architecture("cnn", "compact ResNet-style CNN baseline", "baselines:CNNConfig", "baselines:CompactCNN",
                 recursive=False),
)}
DEFAULT_ARCH = "vitrm"    # configs written before the baselines existed name no arch: they are ViTRMs'
TOKENIZERS = ("patch", "conv")
COMBINES = ("concat", "add")
MLPS = ("gelu", "swiglu")
FLAGS = ("block_norm", "head_norm", "type_embed")   # the ViTRM's true/false fields

MAX_PARAMETERS = 200_000_000      # a checkpoint asking for more is refused before allocation
# Small weights can still ask for huge work per image: attention is quadratic in the tokens,
# a trace keeps every attention map, and a CNN's first stage runs at full resolution.
MAX_TOKENS = 4096
MAX_ACTIVATION_BYTES = 2**30      # per image: one step's attention maps, or one CNN feature map
# ...and tiny weights can ask for endless work: the same block applied again and again (a 840 KB checkpoint of
# 512 layers, 64 latent updates and 1,024 trained steps took 12 s a step). The work one image may cost at the
# most steps anything runs (``vitrm.steps.max_steps``, STEP_FACTOR x the trained count: the app's scrubber;
# evaluate, predict and the default page run fewer) is capped in two figures (``estimate_work``): layer
# applications, which bound the per-operation overhead that dominates at small widths (about 0.5 ms each on the
# 2-core machine, whatever the width), and FLOPs, which bound the arithmetic. The shipped checkpoints need at
# most 96 layer applications and 0.46 GFLOP there
# (tests/test_hostile.py::test_shipped_checkpoints_are_well_inside_the_work_budget).
MAX_LAYER_CALLS = 16_384          # at STEP_FACTOR x N: N=1,024 of 1 layer and 1 latent update needs 8,192
MAX_FLOPS = 100 * 10**9           # at STEP_FACTOR x N: about 13 s of one core here; the flagship needs 0.46 G

INT_RANGES = {
    "image_size": (4, 1024), "in_channels": (1, 16), "num_classes": (2, 100_000),
    "patch_size": (1, 256), "dim": (4, 4096), "heads": (1, 64), "layers": (1, 512),
    "latent_updates": (0, 64), "trained_steps": (1, MAX_TRAINED_STEPS), "conv_stages": (0, 8), "mlp_hidden": (0, 65536),
}
LIST_TYPES = {"class_names": str, "mean": (int, float), "std": (int, float), "cnn_widths": int}
# Every field of the one config class that served all architectures before each had its own.
LEGACY_FIELDS = frozenset({
    "arch", "image_size", "in_channels", "num_classes", "tokenizer", "patch_size", "dim", "heads", "mlp_ratio",
    "layers", "latent_updates", "combine", "trained_steps", "dropout", "cnn_widths", "class_names", "mean", "std"})


class ConfigError(UserError, ValueError):
    """A config is malformed; the message names the key."""


# --------------------------------------------------------------------------- the model config

def arch_of(raw: dict) -> object:
    """The ``arch`` a config's data names (``DEFAULT_ARCH`` when it names none); not yet checked."""
    return raw.get("arch", DEFAULT_ARCH)


def architecture(arch: object) -> Architecture:
    """The table's row for ``arch``, or ConfigError."""
    if not isinstance(arch, str):
        raise ConfigError(f"arch must be a string, got {arch!r}")
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def config_classes() -> dict[str, type]:
    """The config dataclass of each architecture, by its ``arch``."""
    return {name: a.config_class() for name, a in ARCHITECTURES.items()}


def config_class(arch: object) -> type:
    """The config dataclass for ``arch``, or ConfigError."""
    return architecture(arch).config_class()


def parse_model_config(raw: object):
    """Untrusted data (JSON, YAML) -> the config of its ``arch`` that passes every rule, or ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a JSON object, got {type(raw).__name__}")
    arch = arch_of(raw)
    cls = config_class(arch)
    _check_types(raw)
    read = cls.field_names()
    if is_legacy(raw):
        raw = {k: v for k, v in raw.items() if k in read}
    unknown = set(raw) - {"arch"} - read
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)} for a {arch} model; "
                          f"its keys are {sorted(read | {'arch'})}")
    cfg = cls(**{k: v for k, v in raw.items() if k != "arch"})
    check_model(cfg)
    check_budget(cfg)
    return cfg


def is_legacy(raw: dict) -> bool:
    """Whether ``raw`` is in the layout of the former single config class (see the module docstring)."""
    return LEGACY_FIELDS <= set(raw) <= LEGACY_FIELDS | {"conv_stages"}


def _check_types(raw: dict) -> None:
    for key, (lo, hi) in INT_RANGES.items():
        if key in raw:
            v = raw[key]
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"{key} must be an integer, got {v!r}")
            if not lo <= v <= hi:
                raise ConfigError(f"{key}={v} is outside the allowed range {lo}..{hi}")
    for key in ("tokenizer", "combine", "mlp"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{key} must be a string, got {raw[key]!r}")
    for key in FLAGS:
        if key in raw and not isinstance(raw[key], bool):
            raise ConfigError(f"{key} must be true or false, got {raw[key]!r}")
    for key in ("mlp_ratio", "dropout"):
        if key in raw and (not isinstance(raw[key], (int, float)) or isinstance(raw[key], bool)):
            raise ConfigError(f"{key} must be a number, got {raw[key]!r}")
    for key, typ in LIST_TYPES.items():
        if key in raw:
            v = raw[key]
            if not isinstance(v, (list, tuple)) or not all(isinstance(e, typ) and not isinstance(e, bool)
                                                          for e in v):
                raise ConfigError(f"{key} must be a list of {getattr(typ, '__name__', 'numbers')}")
            if len(v) > 100_000:
                raise ConfigError(f"{key} is too long")


def check_model(cfg, arch: str | None = None) -> None:
    """The rules a config must meet to build its architecture (``arch``, when a model asks for
    its own); ConfigError names the first broken one."""
    expected = config_classes() if arch is None else {arch: config_class(arch)}
    if not isinstance(cfg, tuple(expected.values())):
        wanted = " or ".join(c.__name__ for c in expected.values())
        raise ConfigError(f"expected a {wanted}, got {type(cfg).__name__}")
    if not all(math.isfinite(v) for v in (*cfg.mean, *cfg.std)):
        raise ConfigError("mean and std values must be finite numbers")
    if len(cfg.class_names) != cfg.num_classes:
        raise ConfigError(f"class_names has {len(cfg.class_names)} names but num_classes is {cfg.num_classes}")
    if len(cfg.mean) != cfg.in_channels or len(cfg.std) != cfg.in_channels:
        raise ConfigError(f"mean and std need {cfg.in_channels} values each")
    if any(s <= 0 for s in cfg.std):
        raise ConfigError("std values must be positive")
    if cfg.arch == "cnn":
        if not (cfg.cnn_widths and all(1 <= w <= 4096 for w in cfg.cnn_widths)):
            raise ConfigError("cnn_widths must be a non-empty list of widths between 1 and 4096")
        return
    # The transformers: ViTRM and the ViT baseline share the tokenizer and the layers.
    if not 0 < float(cfg.mlp_ratio) <= 16:
        raise ConfigError("mlp_ratio must be in (0, 16]")
    if not 0 <= float(cfg.dropout) < 1:
        raise ConfigError("dropout must be in [0, 1)")
    if cfg.tokenizer not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {cfg.tokenizer!r}; expected 'patch' or 'conv'")
    if cfg.image_size % cfg.patch_size:
        raise ConfigError(f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")
    if cfg.dim % cfg.heads:
        raise ConfigError(f"dim {cfg.dim} is not divisible by heads {cfg.heads}")
    if cfg.tokenizer == "conv" and (cfg.patch_size < 2 or cfg.patch_size & (cfg.patch_size - 1)):
        raise ConfigError("the conv tokenizer needs patch_size to be a power of two, at least 2")
    if cfg.tokenizer == "conv" and not (0 <= cfg.conv_stages and 2 ** cfg.conv_stages <= cfg.patch_size):
        raise ConfigError(f"conv_stages={cfg.conv_stages} must be between 0 (the full stem) and "
                          f"log2(patch_size) = {cfg.patch_size.bit_length() - 1}")
    if cfg.arch == "vitrm":
        if cfg.combine not in COMBINES:
            raise ConfigError(f"unknown combine {cfg.combine!r}; expected 'concat' or 'add'")
        if cfg.latent_updates < 1:
            raise ConfigError(f"a ViTRM needs latent_updates of at least 1, got {cfg.latent_updates}")
        if cfg.mlp not in MLPS:
            raise ConfigError(f"unknown mlp {cfg.mlp!r}; expected 'gelu' or 'swiglu'")
        if not 0 <= cfg.mlp_hidden <= 16 * cfg.dim:
            raise ConfigError(f"mlp_hidden={cfg.mlp_hidden} must be between 0 (dim * mlp_ratio) and 16 x dim")


def check_budget(cfg) -> None:
    """Refuse a config whose model or per-image work would be absurd, before anything is allocated."""
    estimate = estimate_parameters(cfg)
    if estimate > MAX_PARAMETERS:
        raise ConfigError(f"the config asks for about {estimate:,} parameters, over the limit of {MAX_PARAMETERS:,}")
    if cfg.arch != "cnn" and cfg.num_tokens > MAX_TOKENS:
        raise ConfigError(f"{cfg.num_tokens:,} tokens per image ({cfg.image_size}/{cfg.patch_size} squared), "
                          f"over the limit of {MAX_TOKENS:,}")
    activation = estimate_activation_bytes(cfg)
    if activation > MAX_ACTIVATION_BYTES:
        raise ConfigError(f"one image would need about {activation / 2**30:.1f} GiB of activations per step, "
                          f"over the limit of {MAX_ACTIVATION_BYTES / 2**30:.0f} GiB")
    from .steps import STEP_FACTOR, max_steps
    steps = max_steps(cfg)
    calls, flops = estimate_work(cfg, steps)
    at = f"per image at {steps:,} steps ({STEP_FACTOR} x the trained {cfg.trained_steps:,}, the most the app runs)" \
        if cfg.recursive else "per image"
    if calls > MAX_LAYER_CALLS:
        raise ConfigError(f"the config asks for {calls:,} transformer layer applications {at}, over the limit of "
                          f"{MAX_LAYER_CALLS:,}")
    if flops > MAX_FLOPS:
        raise ConfigError(f"the config asks for about {flops / 1e9:,.1f} GFLOP {at}, over the limit of "
                          f"{MAX_FLOPS / 1e9:,.0f} GFLOP")


def estimate_work(cfg, steps: int | None = None) -> tuple[int, int]:
    """(transformer layer applications, FLOPs) for one image at ``steps`` recursion steps (default: the
    trained count), from the config alone: the matmuls and convolutions, as torch's counter counts them
    (tests/test_hostile.py checks it against ``vitrm.flops_per_image``, within 5%, never under); softmax, norms
    and activations are left out."""
    if cfg.arch == "cnn":
        return 0, _cnn_flops(cfg)
    T, d, mlp = cfg.num_tokens, cfg.dim, mlp_weights(cfg)

    def layer(length: int) -> int:
        # q, k, v and out projections; scores and their weighted sum; the MLP (2 FLOPs a multiply-add)
        return 2 * (4 * length * d * d + 2 * length * length * d + length * mlp)

    heads = 2 * d * (cfg.num_classes + 1)                  # the class and halting heads, once per step
    if not cfg.recursive:
        return cfg.layers, cfg.layers * layer(T + 1) + heads + _stem_flops(cfg)
    steps = cfg.trained_steps if steps is None else steps
    latent = 2 * T + 1 if cfg.combine == "concat" else T + 1      # [y, x, z] or [y, x + z]
    answers = cfg.block_calls_per_step - cfg.latent_updates       # [y, z]
    per_step = cfg.layers * (cfg.latent_updates * layer(latent) + answers * layer(T + 1)) + heads
    return steps * cfg.block_calls_per_step * cfg.layers, steps * per_step + _stem_flops(cfg)


def _stem_flops(cfg) -> int:
    """The tokenizer, run once per image: a patch embedding, or the conv stem as ``vitrm.model.make_tokenizer``
    builds it (conv 3x3 then a max pool halving the side, per stage; a patch embedding for the rest)."""
    if cfg.tokenizer == "patch":
        return 2 * cfg.num_tokens * cfg.in_channels * cfg.patch_size ** 2 * cfg.dim
    full = cfg.patch_size.bit_length() - 1
    stages = cfg.conv_stages or full
    widths = [cfg.in_channels] + [max(cfg.dim // 2 ** (full - 1 - i), 16) for i in range(stages)]
    if stages == full:
        widths[-1] = cfg.dim
    flops, side = 0, cfg.image_size
    for a, b in zip(widths[:-1], widths[1:]):
        flops += 2 * 9 * side * side * a * b
        side = (side + 1) // 2
    rest = cfg.patch_size // 2 ** stages
    if rest > 1:
        flops += 2 * cfg.num_tokens * widths[-1] * rest * rest * cfg.dim
    return flops


def _cnn_flops(cfg) -> int:
    """The compact CNN: a 3x3 stem at full resolution, then per width a residual block (two 3x3 convolutions and
    a 1x1 shortcut where the shape changes), every width after the first halving the side."""
    w, side = cfg.cnn_widths, cfg.image_size
    flops = 2 * 9 * side * side * cfg.in_channels * w[0]
    for i, b in enumerate(w):
        a = w[max(i - 1, 0)]
        if i:
            side = (side + 1) // 2
        flops += 2 * 9 * side * side * (a * b + b * b)
        if i or a != b:
            flops += 2 * side * side * a * b
    return flops + 2 * w[-1] * cfg.num_classes


def estimate_parameters(cfg) -> int:
    """Parameter count from the config alone, to refuse huge models before allocating them."""
    if cfg.arch == "cnn":
        w = (cfg.in_channels,) + tuple(cfg.cnn_widths)
        return sum(9 * a * b * 2 + b * b for a, b in zip(w[:-1], w[1:])) + w[-1] * cfg.num_classes
    d = cfg.dim
    per_layer = 4 * d * d + mlp_weights(cfg) + 10 * d
    tokens = cfg.num_tokens * d * (3 if cfg.arch == "vitrm" else 1)
    stem = cfg.in_channels * d * cfg.patch_size ** 2 + 9 * d * d
    return cfg.layers * per_layer + tokens + stem + d * (cfg.num_classes + 2)


def mlp_weights(cfg) -> int:
    """Weights in one transformer layer's MLP (the multiply-adds per token): D x H twice for GELU, three
    times for SwiGLU, whose first Linear is twice as wide."""
    from .model import mlp_width
    return (3 if getattr(cfg, "mlp", "gelu") == "swiglu" else 2) * cfg.dim * mlp_width(cfg)


def estimate_activation_bytes(cfg) -> int:
    """Largest per-image float32 tensors the config implies: the attention maps a trace keeps for
    one step (ViTRM), one layer's attention weights (ViT), or the full-resolution stage (CNN)."""
    if cfg.arch == "cnn":
        return 4 * cfg.image_size ** 2 * max(cfg.cnn_widths)
    T = cfg.num_tokens
    if cfg.arch == "vit":
        return 4 * cfg.heads * (T + 1) ** 2
    latent_len = 2 * T + 1 if cfg.combine == "concat" else T + 1
    return 4 * cfg.layers * cfg.heads * (cfg.latent_updates * latent_len ** 2 + (T + 1) ** 2)


# --------------------------------------------------------------------------- other configs

def parse_dataclass(cls, raw: object, where: str = ""):
    """A typed dataclass (the training config, its augmentation section) from YAML/JSON data.

    Each value must have its default's type (a YAML "1e-3" string counts as a number); a
    nested dataclass is parsed in turn, and a ``model`` section by ``parse_model_config``.
    """
    from .model import ModelConfig
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known keys are {sorted(known)}")
    defaults = cls()
    kwargs = {}
    for key, value in raw.items():
        default = getattr(defaults, key)
        name = f"{where}.{key}" if where else key
        if isinstance(default, ModelConfig):
            if isinstance(value, dict):
                # Each key's type first, named as written ("model.dim must be an integer"); a hand-written
                # section may say "mlp_ratio: 2" or "dropout: 1e-1", and both are numbers. The types are
                # those of the section's own architecture; parse_model_config names any key it lacks.
                arch = arch_of(value)
                template = config_classes()[arch]() if arch in ARCHITECTURES else default
                value = {k: _typed(getattr(template, k), v, f"{name}.{k}")
                         if k in template.field_names() else v for k, v in value.items()}
            try:
                kwargs[key] = parse_model_config(value)
            except ConfigError as e:
                raise ConfigError(f"{name}: {e}") from None
        elif dataclasses.is_dataclass(default):
            kwargs[key] = parse_dataclass(type(default), value, name)
        else:
            kwargs[key] = _typed(default, value, name)
    return cls(**kwargs)


def _typed(default, value, name: str):
    """``value`` checked against the type of ``default``."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; people write learning rates that way.
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value
