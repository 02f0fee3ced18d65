"""Training with deep supervision: the loop, the schedule, EMA, resume and DDP.

A run is ``setup`` (config, data, model, EMA, optimizer, schedule, loader; a resumed run's
state), then per epoch ``train_one_epoch``, ``evaluate_epoch`` (the log row) and ``save_epoch``.
The heart of it, as in TRM, is a few lines in ``train_one_epoch``::

    logits, halt = model(images, deep_supervision=True)     # [S, B, C], [S, B]; state detached between steps
    loss = mean over steps of  CE(logits_s, target) + w * BCE(halt_s, [argmax logits_s == label])

``step_weighting`` and ``detach_between_steps`` are the two departures from it that a config
can choose; the flagship's card says which it used and why (checkpoints/EXPERIMENTS.md).
``distill_from`` names a trained checkpoint (the teacher) whose answer on the same augmented batch
becomes part of each supervised step's target (``distillation_loss``).

Everything a run needs to continue after SIGKILL is written atomically at the end of every
epoch into the output directory, without pickle:

    model.safetensors + config.json   the model to use (EMA weights when EMA is on)
    train_state.e<epoch>.<i>.safetensors
                                      raw weights, EMA, optimizer moments, in shards of at most
                                      STATE_SHARD_BYTES each, so that an unfinished run's state can
                                      be committed under the repository's 10 MB rule
    train_state.json                  epoch, scheduler, optimizer hyper-parameters, the shard names
    train_config.json                 the resolved training config, and the command that started the
                                      run ("command", its argv); --resume reuses it
    train_log.csv                     one row per finished epoch

Randomness is reseeded from (seed, epoch) at the start of every epoch, so a resumed run
replays the same epochs as an uninterrupted one, bit for bit on CPU.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from . import checkpoint as ckpt
from .analysis import normalize
from .config import ConfigError, arch_of, check_budget, check_model, parse_dataclass
from .data import (
    AugmentConfig,
    AugmentedImages,
    Split,
    batch_mix,
    check_spec,
    default_cache,
    image_transform,
    load_split,
    train_val_split,
)
from .model import ModelConfig, ViTRMConfig, num_parameters

STATE_JSON = "train_state.json"
# Runs saved before the state was sharded wrote one file; --resume still reads it.
LEGACY_STATE_WEIGHTS = "train_state.safetensors"
# 8 MiB: every shard stays under the 10 MB a tracked file may weigh (issue 25). A single tensor larger
# than this gets a shard of its own.
STATE_SHARD_BYTES = 8 * 2**20
TRAIN_CONFIG = "train_config.json"
LOG = "train_log.csv"
# Keys of train_config.json beside the config itself: the argv that started the run, and a note on it.
RECORD_KEYS = ("command", "command_note")
LOG_FIELDS = ["epoch", "train_loss", "train_ce", "train_halt_bce", "train_top1", "val_top1", "test_top1",
              "lr", "epoch_seconds", "wall_seconds", "images_per_second"]


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ViTRMConfig)   # or ViTConfig, CNNConfig: its "arch" says
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: str = "cifar10"
    data_dir: str = "data"
    download: bool = False
    cache_dir: str = field(default_factory=default_cache)    # as given: $VITRM_CACHE, else "~/.cache/vitrm"
    out: str = "runs/vitrm"
    val_size: int = 5000            # held out from train; every model choice is made on it
    epochs: int = 100
    batch_size: int = 128           # global batch, split across DDP ranks
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 5.0
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999        # 0 turns EMA off
    halt_loss_weight: float = 0.5
    no_grad_steps: int = 0          # TRM-style steps without gradient before each supervised step
    detach_between_steps: bool = True   # the paper's deep supervision; false backpropagates through all steps
    step_weighting: str = "uniform"     # how the supervised steps' losses are weighted; see step_weights
    init_from: str = ""             # warm start: a checkpoint directory whose weights start this run
    distill_from: str = ""          # knowledge distillation: a checkpoint directory whose answers teach this run
    distill_weight: float = 0.5     # share of each supervised step's class loss that is the teacher's
    distill_temperature: float = 2.0
    distill_steps: int = 0          # the teacher's recursion steps (0: its trained count); fewer cost less
    eval_test: bool = True          # log test accuracy every epoch (never used to choose anything)
    eval_batch_size: int = 500
    threads: int = 0                # torch CPU threads; 0 keeps torch's default
    workers: int = 0                # DataLoader workers
    seed: int = 0
    amp: bool = True                # bfloat16 autocast, only where a GPU is present

    def to_dict(self):
        return dataclasses.asdict(self) | {"model": self.model.to_dict()}   # with its "arch"


def _set_dotted(raw: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
    node[keys[-1]] = value


def load_train_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML or JSON config and apply ``KEY=VALUE`` overrides (values parsed as YAML).

    A config may name another as its ``base:`` (a path relative to it): the base is read first and
    the file's own keys override it, nested sections key by key, except a ``model`` section that
    names another architecture than its base's: it replaces the base's section, whose keys that
    architecture would not read. A run's train_config.json is a
    config too (its recorded command aside), so a run can be repeated from its record.
    """
    import yaml
    raw = _read_config_file(Path(path)) if path else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    cfg = parse_dataclass(TrainConfig, raw)
    validate(cfg)
    return cfg


def _read_config_file(p: Path, seen: tuple[Path, ...] = ()) -> dict:
    import yaml
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    if p.resolve() in seen:
        raise ConfigError(f"{p}: a config cannot be its own base")
    try:
        text = p.read_text(encoding="utf-8")
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{p}: cannot parse ({str(e).splitlines()[0]})") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    raw = {k: v for k, v in raw.items() if k not in RECORD_KEYS}
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{p}: base must be the path of another config, got {base!r}")
    return _merged(_read_config_file(p.parent / base, seen + (p.resolve(),)), raw)


def _merged(base: dict, override: dict) -> dict:
    """``override`` over ``base``; where both hold a section (a mapping), merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _switches_model(key, out[key], value):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _switches_model(key: str, base: dict, override: dict) -> bool:
    """A model section of another architecture replaces its base's rather than inheriting keys the
    new architecture does not read (a ViT has no latent_updates)."""
    base_arch = arch_of(base)
    return key == "model" and override.get("arch", base_arch) != base_arch


def validate(cfg: TrainConfig) -> None:
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "eval_batch_size": cfg.eval_batch_size}
    for key, v in positive.items():
        if v < 1:
            raise ConfigError(f"{key} must be at least 1, got {v}")
    if cfg.epochs > 100_000 or cfg.batch_size > 1_000_000:
        raise ConfigError("epochs or batch_size is absurdly large")
    if not 0 < cfg.lr < 10:
        raise ConfigError(f"lr must be in (0, 10), got {cfg.lr}")
    if not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if cfg.no_grad_steps < 0 or cfg.model.trained_steps % (cfg.no_grad_steps + 1):
        raise ConfigError("model.trained_steps must be a multiple of no_grad_steps + 1")
    if cfg.step_weighting not in STEP_WEIGHTINGS:
        raise ConfigError(f"step_weighting must be one of {', '.join(STEP_WEIGHTINGS)}, got {cfg.step_weighting!r}")
    if not 0 <= cfg.distill_weight <= 1:
        raise ConfigError(f"distill_weight must be in [0, 1], got {cfg.distill_weight}")
    if not 0 < cfg.distill_temperature <= 100:
        raise ConfigError(f"distill_temperature must be in (0, 100], got {cfg.distill_temperature}")
    if not 0 <= cfg.distill_steps <= 1024:
        raise ConfigError(f"distill_steps must be in 0..1024 (0: the teacher's trained count), got {cfg.distill_steps}")
    if cfg.val_size < 0 or cfg.threads < 0 or cfg.workers < 0:
        raise ConfigError("val_size, threads and workers must not be negative")
    try:
        check_model(cfg.model)
        check_budget(cfg.model)
    except ConfigError as e:
        raise ConfigError(f"model: {e}") from None


# --------------------------------------------------------------------------- distributed

def _dist_env() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


# --------------------------------------------------------------------------- state on disk

def _shards(tensors: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """Pack tensors, in order, into groups of at most ``limit`` bytes each."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def _save_state(out: Path, model, ema, optimizer, scheduler, epoch: int, wall: float, log_rows: list[dict]):
    raw = model.module if isinstance(model, DistributedDataParallel) else model
    tensors = {f"model.{k}": v for k, v in raw.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for name, v in st.items():
            tensors[f"opt.{idx}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    # New shards get new names (the epoch is in them) and train_state.json, written last and atomically,
    # says which ones belong together: a kill at any moment leaves the previous epoch's set intact.
    names = []
    for i, shard in enumerate(_shards(tensors, STATE_SHARD_BYTES)):
        names.append(f"train_state.e{epoch:04d}.{i}.safetensors")
        ckpt.save_tensors(shard, out / names[-1])
    ckpt.atomic_write_json(out / STATE_JSON, {
        "epoch": epoch, "wall_seconds": wall, "param_groups": opt["param_groups"],
        "scheduler": scheduler.state_dict(), "tensor_files": names})
    for stale in [*out.glob("train_state.e*.safetensors"), out / LEGACY_STATE_WEIGHTS]:
        if stale.name not in names:
            stale.unlink(missing_ok=True)
    # The model people use: EMA weights when EMA is on.
    ckpt.save(ema.module if ema is not None else raw, out)
    _write_log(out, log_rows)


def read_train_state(out: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A run's resume state as one dict: ``model.*`` raw weights, ``ema.*``, ``opt.<index>.<name>``."""
    from safetensors.torch import load_file
    out = Path(out)
    meta = json.loads((out / STATE_JSON).read_text())
    tensors: dict[str, torch.Tensor] = {}
    for name in meta.get("tensor_files", [LEGACY_STATE_WEIGHTS]):
        if Path(name).name != name:
            raise ConfigError(f"{out / STATE_JSON}: {name!r} is not a file name in the run directory")
        tensors.update(load_file(str(out / name)))
    return tensors


def _load_state(out: Path, model, ema, optimizer, scheduler) -> tuple[int, float]:
    meta = json.loads((out / STATE_JSON).read_text())
    tensors = read_train_state(out)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return meta["epoch"], meta["wall_seconds"]


def _write_log(out: Path, rows: list[dict]):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    ckpt.atomic_write_bytes(out / LOG, buf.getvalue().encode())


def read_log(out: Path) -> list[dict]:
    file = Path(out) / LOG
    if not file.is_file():
        return []
    with open(file, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- the loop

def make_optimizer(model: torch.nn.Module, cfg: TrainConfig):
    # No weight decay on norms, biases, positional embeddings and initial states.
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n and "init" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n and "init" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def make_scheduler(optimizer, cfg: TrainConfig, iters_per_epoch: int):
    total = cfg.epochs * iters_per_epoch
    warmup = min(max(1, round(cfg.warmup_epochs * iters_per_epoch)), total - 1) if total > 1 else 0
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=cfg.min_lr)
    if warmup == 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


STEP_WEIGHTINGS = ("uniform", "linear", "last")


def step_weights(steps: int, weighting: str) -> list[float]:
    """Loss weight of each supervised step, summing to 1.

    "uniform" is the paper's. "linear" (1, 2, .., S) leans on the later steps: under uniform
    weights a block strong enough to answer in one step is trained to do exactly that, and
    the later steps have nothing left to add. "last" supervises only the last step's class
    (the halting head still learns at every step); with ``detach_between_steps=False`` that
    is plain backpropagation through the whole recursion.
    """
    raw = {"uniform": [1.0] * steps, "linear": [float(s + 1) for s in range(steps)],
           "last": [0.0] * (steps - 1) + [1.0]}[weighting]
    return [w / sum(raw) for w in raw]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened answers, times T^2 (Hinton et al., 2015),
    so that its gradient keeps the scale of a cross-entropy whatever the temperature."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    reduction="batchmean", log_target=True) * t * t


def supervision_loss(logits, halt, targets, labels, cfg: TrainConfig, teacher_logits=None):
    """Weighted sum over supervised steps of cross-entropy, plus the halting BCE.

    ``targets`` are class probabilities (soft under MixUp/CutMix); ``labels`` the hard labels
    used to decide whether a step's answer is right, which is what the halting head predicts.
    With ``teacher_logits`` [B, C], each supervised step's class loss is
    ``(1 - a) * CE + a * distillation_loss`` with ``a = cfg.distill_weight``: the teacher teaches the
    steps the step weighting supervises, and no others (with "last", only the last).
    """
    weights = step_weights(logits.shape[0], cfg.step_weighting)
    a = cfg.distill_weight if teacher_logits is not None else 0.0

    def class_loss(step_logits):
        loss = F.cross_entropy(step_logits, targets, label_smoothing=cfg.label_smoothing)
        if a:
            loss = (1 - a) * loss + a * distillation_loss(step_logits, teacher_logits, cfg.distill_temperature)
        return loss

    ce = sum(w * class_loss(logits[s]) for s, w in enumerate(weights) if w)   # "last" skips unsupervised steps
    if halt is None:
        return ce, ce, torch.zeros(())
    correct = (logits.argmax(-1) == labels).float()
    bce = F.binary_cross_entropy_with_logits(halt, correct)
    return ce + cfg.halt_loss_weight * bce, ce, bce


@torch.no_grad()
def accuracy(model, split: Split, cfg: TrainConfig, device, steps: int | None = None) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(split), cfg.eval_batch_size):
        images = normalize(split.images[i:i + cfg.eval_batch_size].to(device), cfg.model.mean, cfg.model.std)
        with _autocast(device, cfg):
            logits = model(images, steps)
        correct += (logits.argmax(-1).cpu() == split.labels[i:i + cfg.eval_batch_size]).sum().item()
    return correct / max(1, len(split))


def refresh_batchnorm(ema: AveragedModel, split: Split, cfg: TrainConfig, device, images: int = 5000) -> None:
    """Recompute the EMA model's BatchNorm statistics for the EMA weights.

    Averaging running statistics gathered under other weights gives statistics that fit
    none of them: a CNN's EMA weights then classify near chance. As torch.optim.swa_utils
    advises, they are recomputed with ``update_bn`` over un-augmented training images, the
    first ``images`` of the split, so that no random state is consumed and a resumed run
    repeats exactly. Models without BatchNorm (ViTRM, ViT) are left alone.
    """
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in ema.modules()):
        return
    batches = [normalize(split.images[i:i + cfg.eval_batch_size].to(device), cfg.model.mean, cfg.model.std)
               for i in range(0, min(images, len(split)), cfg.eval_batch_size)]
    update_bn(batches, ema.module, device)


def _autocast(device, cfg):
    enabled = cfg.amp and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def prepare_output(cfg: TrainConfig, resume: bool) -> Path:
    """Check everything that can be checked before a single file is written."""
    out = Path(cfg.out)
    if resume:
        if not (out / STATE_JSON).is_file():
            raise ConfigError(f"{out}: nothing to resume (no {STATE_JSON}); start without --resume")
    elif (out / STATE_JSON).is_file() or (out / ckpt.WEIGHTS).is_file():
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or choose another --out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if cfg.init_from and not resume:
        _check_init_from(cfg)
    if cfg.distill_from:
        ckpt.read_config(cfg.distill_from)   # a missing or broken teacher fails before any data is decoded
    check_spec(cfg.data, cfg.data_dir, cfg.download)
    return out


# Fields that may differ between a warm-start checkpoint and the run it starts: they do not
# change the shapes of any weight.
# num_classes is left to load_state_dict: it is only known once the data has been read.
_WARM_START_FREE = {"trained_steps", "class_names", "mean", "std", "dropout", "latent_updates", "num_classes"}


def _check_init_from(cfg: TrainConfig) -> None:
    """Fail before any data is decoded if the warm-start weights cannot fit the model."""
    source = ckpt.read_config(cfg.init_from)
    theirs = {k: v for k, v in source.to_dict().items() if k not in _WARM_START_FREE}
    ours = {k: v for k, v in cfg.model.to_dict().items() if k not in _WARM_START_FREE}
    differ = sorted(k for k in ours if ours[k] != theirs.get(k))
    if differ:
        raise ConfigError(f"init_from {cfg.init_from}: its architecture differs in {differ}")


@dataclass
class Run:
    """Everything one training process holds between epochs (built by ``setup``)."""

    cfg: TrainConfig
    out: Path
    rank: int
    world: int
    device: torch.device
    model: torch.nn.Module                # the raw model; ``ddp`` wraps it when there are several processes
    ddp: torch.nn.Module
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: DistributedSampler
    loader: DataLoader
    mix: object | None                    # MixUp/CutMix on whole batches, or None
    teacher: torch.nn.Module | None       # distill_from's model in eval mode, or None
    train_split: Split
    val_split: Split | None
    test_split: Split | None
    start_epoch: int = 0                  # the last finished epoch (0 for a new run)
    wall_before: float = 0.0              # wall seconds of the epochs before this process started
    log_rows: list[dict] = field(default_factory=list)


def setup(cfg: TrainConfig, resume: bool = False, command: list[str] | None = None,
          threads: int | None = None) -> Run:
    """Check the config, load the data, build model, EMA, optimizer, schedule and loader; restore a run.

    A new run records its resolved config, and ``command`` (the argv that started it), in
    train_config.json; ``resume`` reads that file back, so a run always continues as it began.
    ``threads`` overrides the thread count, of a resumed run too: it changes the speed, not the recipe,
    so a run started on one core may continue on two.
    """
    if resume:
        saved = Path(cfg.out) / TRAIN_CONFIG
        if saved.is_file():
            cfg = config_from_record(json.loads(saved.read_text()))
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        cfg = dataclasses.replace(cfg, threads=threads)
    out = prepare_output(cfg, resume)
    rank, world, device = _dist_env()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    train_split, val_split, test_split = _load_splits(cfg)

    torch.manual_seed(cfg.seed)
    model = ckpt.build_model(cfg.model).to(device)
    if cfg.init_from and not resume:
        _warm_start(model, cfg)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
           if cfg.ema_decay > 0 else None)
    optimizer = make_optimizer(model, cfg)
    teacher = load_teacher(cfg, device) if cfg.distill_from else None
    sampler = DistributedSampler(AugmentedImages(train_split), num_replicas=world, rank=rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(AugmentedImages(train_split, image_transform(cfg.augment, cfg.model.image_size)),
                        batch_size=cfg.batch_size // world, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    run = Run(cfg=cfg, out=out, rank=rank, world=world, device=device, model=model, ddp=model, ema=ema,
              optimizer=optimizer,
              scheduler=make_scheduler(optimizer, cfg, len(loader)), sampler=sampler, loader=loader,
              mix=batch_mix(cfg.augment, cfg.model.num_classes), teacher=teacher, train_split=train_split,
              val_split=val_split, test_split=test_split)
    if resume:
        run.start_epoch, run.wall_before = _load_state(out, model, ema, optimizer, run.scheduler)
        run.log_rows = [r for r in read_log(out) if int(r["epoch"]) <= run.start_epoch]
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_json(out / TRAIN_CONFIG, cfg.to_dict() | ({"command": list(command)} if command else {}))
    if world > 1:
        run.ddp = DistributedDataParallel(model)
    return run


def config_from_record(record: dict) -> TrainConfig:
    """The TrainConfig a run recorded in its train_config.json (the recorded command aside)."""
    return parse_dataclass(TrainConfig, {k: v for k, v in record.items() if k not in RECORD_KEYS})


def _load_splits(cfg: TrainConfig) -> tuple[Split, Split | None, Split | None]:
    """(train, validation, test); the model config takes the data's class names."""
    train_split = load_split(cfg.data, "train", cfg.data_dir, cfg.model.image_size, cfg.cache_dir, cfg.download)
    test_split = load_split(cfg.data, "test", cfg.data_dir, cfg.model.image_size, cfg.cache_dir, cfg.download) \
        if cfg.eval_test else None
    if len(train_split.class_names) != cfg.model.num_classes:
        cfg.model = dataclasses.replace(cfg.model, num_classes=len(train_split.class_names),
                                        class_names=train_split.class_names)
    else:
        cfg.model = dataclasses.replace(cfg.model, class_names=train_split.class_names)
    train_split, val_split = train_val_split(train_split, cfg.val_size)
    if len(train_split) < cfg.batch_size:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(train_split)} training images")
    return train_split, val_split, test_split


def _warm_start(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Weights from ``init_from`` (its EMA weights); the optimizer and schedule start fresh."""
    try:
        model.load_state_dict(ckpt.load(cfg.init_from).state_dict())
    except RuntimeError as e:
        raise ConfigError(f"init_from {cfg.init_from}: its weights do not fit this model "
                          f"({str(e).splitlines()[-1].strip()})") from None


def load_teacher(cfg: TrainConfig, device) -> torch.nn.Module:
    """The distillation teacher, frozen, in eval mode; it must answer over the student's classes."""
    teacher = ckpt.load(cfg.distill_from, device)
    if teacher.config.class_names != cfg.model.class_names:
        raise ConfigError(f"distill_from {cfg.distill_from}: its classes {teacher.config.class_names[:5]}... "
                          f"differ from the data's {cfg.model.class_names[:5]}...")
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def teacher_answer(run: Run, images: torch.Tensor) -> torch.Tensor:
    """The teacher's logits [B, C] on the batch the student sees (the same augmentation and mix:
    "consistent" distillation, Beyer et al. 2022), after ``distill_steps`` steps (a recursive teacher's
    first step can answer nearly as well as its last, at a fraction of the cost). ``images`` are
    normalized with the student's statistics; the teacher's own are applied instead."""
    teacher, ours = run.teacher, run.cfg.model
    theirs = teacher.config
    if (list(theirs.mean), list(theirs.std)) != (list(ours.mean), list(ours.std)):
        images = _renormalize(images, (ours.mean, ours.std), (theirs.mean, theirs.std))
    steps = (run.cfg.distill_steps or None) if theirs.recursive else None
    with _autocast(run.device, run.cfg):
        return teacher(images, steps).float()


def _renormalize(images: torch.Tensor, source, target) -> torch.Tensor:
    """Images standardized with ``source`` = (mean, std) -> the same images standardized with ``target``."""
    def stats(pair):
        return (torch.tensor(v, device=images.device, dtype=images.dtype).view(1, -1, 1, 1) for v in pair)
    (m0, s0), (m1, s1) = stats(source), stats(target)
    return (images * s0 + m0 - m1) / s1


def train_one_epoch(run: Run, epoch: int, progress: bool = True) -> dict:
    """One pass over the training split with deep supervision; returns the epoch's sums over images.

    Randomness is reseeded from (seed, epoch), so a resumed epoch is identical to an uninterrupted one.
    """
    cfg, device = run.cfg, run.device
    torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + run.rank)
    run.sampler.set_epoch(epoch)
    run.ddp.train()
    t0 = time.time()
    sums = {"loss": 0.0, "ce": 0.0, "bce": 0.0, "correct": 0, "seen": 0}
    bar = tqdm(run.loader, desc=f"epoch {epoch}/{cfg.epochs}", disable=not (progress and run.rank == 0),
               unit="batch", dynamic_ncols=True, mininterval=2.0)
    for images, labels in bar:
        images, labels = images.to(device, non_blocking=True), labels.to(device)
        targets = F.one_hot(labels, cfg.model.num_classes).float()
        # Normalize first: MixUp and CutMix cannot blend uint8 in place, and both are affine in
        # the pixels, so mixing the normalized batch is the same as normalizing the mixed one.
        images = normalize(images, cfg.model.mean, cfg.model.std)
        if run.mix is not None:
            images, targets = run.mix(images, labels)
        hard = targets.argmax(-1)
        teacher_logits = teacher_answer(run, images) if run.teacher is not None else None
        with _autocast(device, cfg):
            logits, halt = run.ddp(images, cfg.model.trained_steps if cfg.model.recursive else None,
                                   deep_supervision=True, no_grad_steps=cfg.no_grad_steps,
                                   detach_between_steps=cfg.detach_between_steps)
        logits = logits.float()
        loss, ce, bce = supervision_loss(logits, None if halt is None else halt.float(), targets, hard, cfg,
                                         teacher_logits)
        _optimizer_step(run, loss)
        n = len(labels)
        sums["loss"] += loss.item() * n; sums["ce"] += ce.item() * n; sums["bce"] += bce.item() * n
        sums["correct"] += (logits[-1].argmax(-1) == hard).sum().item(); sums["seen"] += n
        bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}", acc=f"{sums['correct'] / sums['seen']:.3f}",
                        img_s=f"{sums['seen'] * run.world / (time.time() - t0):.0f}", refresh=False)
    bar.close()
    sums["seconds"] = time.time() - t0
    if run.world > 1:
        # Each rank summed its own shard; the log reports the whole global batch.
        totals = torch.tensor([sums[k] for k in ("loss", "ce", "bce", "correct", "seen")],
                              dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        sums |= dict(zip(("loss", "ce", "bce", "correct", "seen"), totals.tolist()))
    return sums


def _optimizer_step(run: Run, loss: torch.Tensor) -> None:
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)


def evaluate_epoch(run: Run, epoch: int, sums: dict, t_start: float) -> dict:
    """The epoch's log row: training figures from ``sums``, validation (and test) top-1 of the weights people use."""
    cfg = run.cfg
    if run.ema is not None:
        refresh_batchnorm(run.ema, run.train_split, cfg, run.device)
    eval_model = run.ema.module if run.ema is not None else run.model
    seen = sums["seen"]
    return {"epoch": epoch,
            "train_loss": sums["loss"] / seen, "train_ce": sums["ce"] / seen,
            "train_halt_bce": sums["bce"] / seen, "train_top1": sums["correct"] / seen,
            "val_top1": accuracy(eval_model, run.val_split, cfg, run.device) if run.val_split else "",
            "test_top1": accuracy(eval_model, run.test_split, cfg, run.device) if run.test_split else "",
            "lr": run.optimizer.param_groups[0]["lr"], "epoch_seconds": round(sums["seconds"], 2),
            "wall_seconds": round(run.wall_before + time.time() - t_start, 2),
            "images_per_second": round(seen / sums["seconds"], 1)}


def save_epoch(run: Run, epoch: int, row: dict) -> None:
    """Append the row to the log and write the checkpoint and the resume state, each file atomically."""
    run.log_rows.append(row)
    _save_state(run.out, run.model, run.ema, run.optimizer, run.scheduler, epoch, row["wall_seconds"], run.log_rows)


def _print_row(row: dict, seconds: float) -> None:
    def shown(v):
        return v if v == "" else round(v, 4)
    print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f} train {row['train_top1']:.4f} "
          f"val {shown(row['val_top1'])} test {shown(row['test_top1'])} ({seconds:.0f} s)", flush=True)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None,
          command: list[str] | None = None, threads: int | None = None) -> Path:
    """Train (or resume) a run into ``cfg.out`` and return that directory.

    ``stop_after`` ends the run after that epoch without touching the schedule, which is
    still planned for ``cfg.epochs``: the weights are exactly those an uninterrupted run has
    at that epoch, and ``--resume`` continues it. A stage cut short is reproducible this way.
    ``command`` is the argv that started the run, recorded in train_config.json. ``threads``: see
    ``setup``.
    """
    run = setup(cfg, resume, command, threads)
    cfg = run.cfg
    last_epoch = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
    if run.rank == 0 and progress:
        print(f"training {cfg.model.arch} with {num_parameters(run.model):,} parameters on "
              f"{len(run.train_split):,} images ({run.device}, {run.world} process{'es' if run.world > 1 else ''}); "
              f"epochs {run.start_epoch + 1}..{last_epoch} of {cfg.epochs}")
    t_start = time.time()
    for epoch in range(run.start_epoch + 1, last_epoch + 1):
        sums = train_one_epoch(run, epoch, progress)
        if run.rank == 0:
            row = evaluate_epoch(run, epoch, sums, t_start)
            save_epoch(run, epoch, row)
            if progress:
                _print_row(row, sums["seconds"])
        if run.world > 1:
            dist.barrier()
    if run.world > 1:
        dist.destroy_process_group()
    return run.out
