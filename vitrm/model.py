"""The Vision Tiny Recursion Model (ViTRM), in one readable file.

ViTRM (Akazan et al., 2026) replaces a deep ViT encoder with one tiny block of ``k``
transformer layers that is applied over and over. Three states are carried along:

    x  image tokens, one per patch, computed once by the tokenizer        [B, T, D]
    y  one answer token; the heads read the class and "am I right?" here  [B, D]
    z  latent tokens, one per patch: the model's scratch pad              [B, T, D]

One recursion step (what the app's slider moves through) is

    for i in 1..n:  z <- f(x, y, z)      # latent updates: think
    y <- f(y, z)                         # answer update: commit to an answer

with the same weights ``f`` at every call. After ``steps`` steps the class logits and the
halting logit are read from y. Training (``vitrm.train``) reads the heads after every step
(``forward(..., deep_supervision=True)``); the config chooses what is learned from them: the
paper's loss on every step with y and z detached between steps (the default), or, as the
shipped flagship's last stages do, the class loss on the last step only with gradients through
all steps (``step_weighting``, ``detach_between_steps``).

How x, y and z enter f (``combine``):

* ``"concat"`` (the paper's code): the latent update attends over [y, x_1..x_T, z_1..z_T],
  2T+1 tokens, and z is read from the z positions. Per latent call the attention costs
  O((2T+1)^2 D) and the MLP O((2T+1) D^2): about 4x the attention and 2x the MLP of "add".
* ``"add"`` (TRM): x and z are summed position-wise, so the latent update attends over
  [y, x_1+z_1, .., x_T+z_T], T+1 tokens.

The answer update always attends over [y, z_1..z_T] (T+1 tokens) and y is read from
position 0, so "where does the answer token look" is one row of one attention matrix.

The block ends in a LayerNorm, so y and z stay on the same scale however many steps are
run; that is what lets ``steps`` exceed the trained count without the state blowing up.

The paper's public code builds a variant of this (``vitrm.reference`` imports its checkpoints),
and five config fields spell it out so that it can also be trained here; the defaults are this
file's own architecture, so every checkpoint saved before they existed computes as it did:

    mlp="swiglu"       Linear(D, 2H) -> SwiGLU -> Linear(H, D) instead of Linear -> GELU -> Linear
    mlp_hidden=H       the MLP's hidden width H, when dim * mlp_ratio cannot say it exactly
    block_norm=False   no closing LayerNorm in the block
    head_norm=False    the heads read y itself, not LayerNorm(y)
    type_embed=False   combine="concat" without the x / z type embedding. The paper's code orders the
                       latent sequence [x, y, z], this file [y, x, z]; attention without position
                       information inside the block is permutation-equivariant, so both give the same
                       z as long as z is read from the last T positions, as both do.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from .baselines import ViTConfig

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class ModelConfig:
    """What every architecture reads: the input, the classes and the normalization.

    One dataclass per architecture adds the fields that architecture reads and nothing else:
    ``ViTRMConfig`` below, ``ViTConfig`` and ``CNNConfig`` in ``vitrm.baselines``. ``arch`` names
    the class in ``config.json``; ``trained_steps`` is the step count a model answers at by
    default (1 for the baselines). The rules a config must meet live in ``vitrm.config``.
    """

    arch: ClassVar[str]
    image_size: int = 32
    in_channels: int = 3
    num_classes: int = 10
    class_names: tuple[str, ...] = CIFAR10_CLASSES
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def __post_init__(self):
        # JSON gives lists; keep tuples so configs compare equal after a round trip.
        for f in fields(self):
            if isinstance(f.default, tuple):
                setattr(self, f.name, tuple(getattr(self, f.name)))

    def to_dict(self) -> dict:
        return {"arch": self.arch, **asdict(self)}

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @property
    def recursive(self) -> bool:
        """Whether the model answers after any number of steps (``steps=``) or in one pass, as
        the architecture table (``vitrm.config.ARCHITECTURES``) says."""
        from .config import ARCHITECTURES
        return ARCHITECTURES[self.arch].recursive


class PatchGrid:
    """The token grid of a patch-tokenized config (the ViTRM's and the ViT's): one rule for both."""

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid


@dataclass
class ViTRMConfig(PatchGrid, ModelConfig):
    """Everything needed to rebuild a ViTRM; saved as ``config.json`` next to the weights."""

    arch: ClassVar[str] = "vitrm"
    tokenizer: str = "patch"          # "patch": Conv2d(kernel=stride=patch); "conv": CCT stem
    patch_size: int = 4               # for "conv": the stem's total downsampling
    conv_stages: int = 0              # for "conv": conv-ReLU-pool stages; 0 = log2(patch_size), all of it
    dim: int = 64
    heads: int = 4
    mlp_ratio: float = 2.0
    layers: int = 3                   # k: transformer layers in the shared block
    latent_updates: int = 2           # n: z updates per recursion step
    combine: str = "add"              # "concat" or "add"; see the module docstring
    trained_steps: int = 4            # N: recursion steps used in training; default at inference
    dropout: float = 0.0
    # The paper's code's variant (module docstring); the defaults are this file's architecture.
    mlp: str = "gelu"                 # "gelu" or "swiglu"
    mlp_hidden: int = 0               # the MLP's hidden width; 0: int(dim * mlp_ratio)
    block_norm: bool = True           # a closing LayerNorm in the block
    head_norm: bool = True            # LayerNorm(y) before the heads
    type_embed: bool = True           # combine="concat" only: the x / z type embedding

    @property
    def block_calls_per_step(self) -> int:
        return self.latent_updates + 1

    @property
    def effective_depth(self) -> int:
        """Transformer layers applied to reach the trained answer."""
        return self.trained_steps * self.block_calls_per_step * self.layers


# --------------------------------------------------------------------------- building blocks

class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if need_weights:
            # The same math as SDPA, spelled out, because SDPA never materializes the weights.
            weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
            out = weights @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(B, L, D)), weights


class SwiGLU(nn.Module):
    """[..., 2H] -> [..., H]: ``a, b = x.chunk(2, -1); silu(a) * b``.

    The paper's code names SwiGLU without saying which half is gated; this is the common PyTorch
    idiom (the first half through SiLU, times the second), and ``vitrm.reference`` imports with it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        return F.silu(a) * b


def mlp_width(cfg: ViTRMConfig | ViTConfig) -> int:
    """The MLP's hidden width: ``mlp_hidden`` when a ViTRM config sets it, else int(dim * mlp_ratio)."""
    return getattr(cfg, "mlp_hidden", 0) or int(cfg.dim * cfg.mlp_ratio)


class TransformerLayer(nn.Module):
    """Pre-norm self-attention plus MLP, as in ViT.

    ``mlp="swiglu"`` makes the MLP Linear(D, 2H) -> SwiGLU -> Linear(H, D), the paper's code's;
    its Linears keep the indices 0 and 3 of the GELU MLP's.
    """

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, mlp: str = "gelu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        if mlp == "swiglu":
            expand, act = nn.Linear(dim, 2 * hidden), SwiGLU()
        else:
            expand, act = nn.Linear(dim, hidden), nn.GELU()
        self.mlp = nn.Sequential(expand, act, nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        a, weights = self.attn(self.norm1(x), need_weights)
        x = x + a
        return x + self.mlp(self.norm2(x)), weights


class Block(nn.Module):
    """f: ``k`` layers and a closing LayerNorm (``block_norm``). ViTRM owns one; the ViT baseline stacks them."""

    def __init__(self, cfg: ViTRMConfig | ViTConfig, layers: int | None = None):
        super().__init__()
        # The ViT baseline's config has no variant fields: it is always this file's default architecture.
        mlp = getattr(cfg, "mlp", "gelu")
        self.layers = nn.ModuleList(
            TransformerLayer(cfg.dim, cfg.heads, mlp_width(cfg), cfg.dropout, mlp)
            for _ in range(cfg.layers if layers is None else layers))
        self.norm = nn.LayerNorm(cfg.dim) if getattr(cfg, "block_norm", True) else nn.Identity()

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        """Returns the output and, when asked, attention weights [k, B, H, L, L]."""
        maps = []
        for layer in self.layers:
            x, w = layer(x, need_weights)
            maps.append(w)
        return self.norm(x), (torch.stack(maps) if need_weights else None)


def make_tokenizer(cfg: ViTRMConfig | ViTConfig) -> nn.Module:
    """Image [B, C, H, W] -> tokens [B, D, H/p, W/p] (flattened by the caller)."""
    if cfg.tokenizer == "patch":
        return nn.Conv2d(cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
    if cfg.tokenizer == "conv":
        # Compact-convolutional-transformer stem: conv-ReLU-maxpool stages, each halving the
        # resolution. No batch norm: a prediction must not depend on what else is in the batch.
        # With fewer stages than the downsampling needs (``conv_stages``), a linear patch
        # embedding does the rest: a lighter stem leaves more of the work to the recursion.
        full = int(math.log2(cfg.patch_size))
        stages = cfg.conv_stages or full
        widths = [cfg.in_channels] + [max(cfg.dim // 2 ** (full - 1 - i), 16) for i in range(stages)]
        if stages == full:
            widths[-1] = cfg.dim
        mods: list[nn.Module] = []
        for i in range(stages):
            mods += [nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False), nn.ReLU(inplace=True),
                     nn.MaxPool2d(3, stride=2, padding=1)]
        rest = cfg.patch_size // 2 ** stages
        if rest > 1:
            mods.append(nn.Conv2d(widths[-1], cfg.dim, kernel_size=rest, stride=rest))
        return nn.Sequential(*mods)
    raise ValueError(f"unknown tokenizer {cfg.tokenizer!r}; expected 'patch' or 'conv'")


# --------------------------------------------------------------------------- the trace

@dataclass
class AttentionMaps:
    """Attention weights of every layer and head of every block call, step axis first.

    ``latent``  [S, n, k, B, H, L, L]: the n latent updates of each step. Token order is
                [y, x_1..x_T, z_1..z_T] for combine="concat" (L = 2T+1) and
                [y, x_1+z_1, .., x_T+z_T] for combine="add" (L = T+1).
    ``answer``  [S, k, B, H, T+1, T+1]: the answer update, token order [y, z_1..z_T].
                ``answer[s, l, b, h, 0, 1:]`` is where the answer token looks at step s+1.
    Rows are queries, columns keys; each row sums to 1.
    """

    latent: torch.Tensor
    answer: torch.Tensor
    combine: str

    def select(self, index: int) -> AttentionMaps:
        """Image ``index`` of the batch, as a batch of one of its own (copied: the batch's memory is not kept)."""
        return AttentionMaps(self.latent[:, :, :, index:index + 1].clone(),
                             self.answer[:, :, index:index + 1].clone(), self.combine)

    @property
    def patch_offset_latent(self) -> int:
        """Column where the patch tokens being updated (z) start in a latent-update map."""
        return 1 + (self.latent.shape[-1] - 1) // 2 if self.combine == "concat" else 1


@dataclass
class Trace:
    """Everything the model computed on the way to its answer, one entry per step 1..S.

    This is the seam between the model and everything that shows it: views read a Trace and
    never call model internals.
    """

    logits: torch.Tensor            # [S, B, C]
    probs: torch.Tensor             # [S, B, C]
    halt: torch.Tensor              # [S, B] probability that the step's answer is right
    y: torch.Tensor                 # [S, B, D]
    z: torch.Tensor                 # [S, B, T, D]
    y_init: torch.Tensor            # [B, D] the state before step 1
    z_init: torch.Tensor            # [B, T, D]
    attention: AttentionMaps | None = None

    @property
    def steps(self) -> int:
        return self.logits.shape[0]

    def select(self, index: int) -> Trace:
        """Image ``index`` of the batch, as a batch of one of its own (copied: the batch's memory is not kept)."""
        def one(t: torch.Tensor | None, axis: int) -> torch.Tensor | None:
            return None if t is None else t.narrow(axis, index, 1).clone()
        return Trace(logits=one(self.logits, 1), probs=one(self.probs, 1), halt=one(self.halt, 1), y=one(self.y, 1),
                     z=one(self.z, 1), y_init=one(self.y_init, 0), z_init=one(self.z_init, 0),
                     attention=None if self.attention is None else self.attention.select(index))

    def y_update_norm(self) -> torch.Tensor:
        """[S, B]: ||y_s - y_{s-1}||, with y_0 the learned initial answer."""
        prev = torch.cat([self.y_init[None], self.y[:-1]])
        return (self.y - prev).norm(dim=-1)

    def z_update_norm(self) -> torch.Tensor:
        """[S, B]: RMS over patches of ||z_s - z_{s-1}||."""
        prev = torch.cat([self.z_init[None], self.z[:-1]])
        return (self.z - prev).norm(dim=-1).pow(2).mean(-1).sqrt()


# --------------------------------------------------------------------------- the model

class Preprocessing:
    """PIL images -> normalized float tensor; shared by ViTRM and the baselines."""

    config: ModelConfig

    def preprocess(self, images) -> torch.Tensor:
        """PIL image(s) -> [B, C, H, W] float, normalized with the config's mean and std.

        Each image is converted to RGB, its shorter side resized to ``image_size`` (bicubic,
        antialiased), and the centre square cropped. A 32x32 input passes through unchanged.
        """
        from .analysis import normalize
        from .images import to_model_input  # images.py owns the PIL details
        if not isinstance(images, (list, tuple)):
            images = [images]
        if not images:
            raise ValueError("preprocess needs at least one image")
        batch = torch.stack([to_model_input(im, self.config.image_size) for im in images])
        return normalize(batch, self.config.mean, self.config.std)


class ViTRM(nn.Module, Preprocessing):
    def __init__(self, config: ViTRMConfig):
        super().__init__()
        from .config import check_model
        check_model(config, "vitrm")  # raises ConfigError (a ValueError) naming the broken rule
        self.config = config
        T, D = config.num_tokens, config.dim
        self.tokenizer = make_tokenizer(config)
        self.pos = nn.Parameter(torch.randn(1, T, D) * 0.02)
        self.y_init = nn.Parameter(torch.randn(D) * 0.02)
        self.z_init = nn.Parameter(torch.randn(T, D) * 0.02)
        if config.combine == "concat" and config.type_embed:
            # Tells the block which half of the sequence is x and which is z.
            self.type_embed = nn.Parameter(torch.randn(2, D) * 0.02)
        self.block = Block(config)
        self.head_norm = nn.LayerNorm(D) if config.head_norm else nn.Identity()
        self.head = nn.Linear(D, config.num_classes)
        self.halt_head = nn.Linear(D, 1)
        self.apply(_init_weights)

    # -- pieces of the recursion, small enough to read against the paper

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """x: [B, T, D]."""
        return self.tokenizer(images).flatten(2).transpose(1, 2) + self.pos

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.y_init.expand(batch, -1), self.z_init.expand(batch, -1, -1)

    def latent_update(self, x, y, z, need_weights=False):
        if self.config.combine == "concat" and self.config.type_embed:
            seq = torch.cat([y[:, None], x + self.type_embed[0], z + self.type_embed[1]], dim=1)
        elif self.config.combine == "concat":
            seq = torch.cat([y[:, None], x, z], dim=1)
        else:
            seq = torch.cat([y[:, None], x + z], dim=1)
        out, w = self.block(seq, need_weights)
        return out[:, -z.shape[1]:], w

    def answer_update(self, y, z, need_weights=False):
        out, w = self.block(torch.cat([y[:, None], z], dim=1), need_weights)
        return out[:, 0], w

    def step(self, x, y, z, need_weights=False):
        """One recursion step: n latent updates, then one answer update."""
        latent_maps = []
        for _ in range(self.config.latent_updates):
            z, w = self.latent_update(x, y, z, need_weights)
            latent_maps.append(w)
        y, answer_map = self.answer_update(y, z, need_weights)
        if need_weights:
            return y, z, torch.stack(latent_maps), answer_map
        return y, z, None, None

    def heads(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits [B, C], halting logit [B])."""
        h = self.head_norm(y)
        return self.head(h), self.halt_head(h).squeeze(-1)

    # -- public API

    def forward(self, images: torch.Tensor, steps: int | None = None,
                deep_supervision: bool = False, no_grad_steps: int = 0, detach_between_steps: bool = True):
        """Class logits [B, C] after ``steps`` recursion steps (default: the trained count).

        With ``deep_supervision=True`` (training) it returns ``(logits [S, B, C], halt
        logits [S, B])`` for every supervised step instead, with y and z detached between
        steps so that each step's loss trains one step of recursion, as in TRM. Before each
        supervised step, ``no_grad_steps`` further steps run without gradient; then
        ``steps`` must be a multiple of ``no_grad_steps + 1``. ``detach_between_steps=False``
        keeps the graph between supervised steps, so a later step's loss also trains the
        earlier steps to leave a state that helps it. It lives in ``forward`` so that
        DistributedDataParallel sees the whole computation.
        """
        steps = self._check_steps(steps)
        x = self.embed(images)
        y, z = self.initial_state(images.shape[0])
        if not deep_supervision:
            for _ in range(steps):
                y, z, _, _ = self.step(x, y, z)
            return self.heads(y)[0]
        cycle = no_grad_steps + 1
        if steps % cycle:
            raise ValueError(f"steps={steps} is not a multiple of no_grad_steps + 1 = {cycle}")
        logits, halts = [], []
        for _ in range(steps // cycle):
            if no_grad_steps:
                with torch.no_grad():
                    for _ in range(no_grad_steps):
                        y, z, _, _ = self.step(x, y, z)
            y, z, _, _ = self.step(x, y, z)
            lg, hl = self.heads(y)
            logits.append(lg); halts.append(hl)
            if detach_between_steps:
                y, z = y.detach(), z.detach()
        return torch.stack(logits), torch.stack(halts)

    @torch.no_grad()
    def trace(self, images: torch.Tensor, steps: int | None = None, attention: bool = True) -> Trace:
        """Run ``steps`` recursion steps and keep every intermediate; see ``Trace``.

        ``attention=False`` skips the attention maps, which dominate memory at large batch.
        """
        steps = self._check_steps(steps)
        x = self.embed(images)
        y, z = self.initial_state(images.shape[0])
        y0, z0 = y.clone(), z.clone()
        ys, zs, logits, halts, lat_maps, ans_maps = [], [], [], [], [], []
        for _ in range(steps):
            y, z, lw, aw = self.step(x, y, z, need_weights=attention)
            lg, hl = self.heads(y)
            ys.append(y); zs.append(z); logits.append(lg); halts.append(hl)
            lat_maps.append(lw); ans_maps.append(aw)
        logits_t = torch.stack(logits)
        maps = AttentionMaps(torch.stack(lat_maps), torch.stack(ans_maps), self.config.combine) if attention else None
        return Trace(logits=logits_t, probs=logits_t.softmax(-1), halt=torch.stack(halts).sigmoid(),
                     y=torch.stack(ys), z=torch.stack(zs), y_init=y0, z_init=z0, attention=maps)

    def _check_steps(self, steps: int | None) -> int:
        steps = self.config.trained_steps if steps is None else steps
        # numbers.Integral admits numpy integers (from sliders and tables); bool is refused.
        if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return int(steps)


def _init_weights(m: nn.Module):
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
