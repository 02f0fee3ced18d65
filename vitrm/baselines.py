"""Non-recursive baselines, so that the parameter-efficiency claim is measured, not quoted.

* ``ViT`` (``ViTConfig``): the same tokenizer, width and heads as a ViTRM, with ``layers``
  unshared layers. ``vit_config_for(vitrm_config)`` sets ``layers`` to the ViTRM's effective
  depth at its trained step count, so both apply the same number of transformer layers per image.
* ``CompactCNN`` (``CNNConfig``): a small ResNet for 32x32 input.

Both follow the ViTRM interface (``forward(images, steps)``, ``trace``, ``preprocess``) and
count as one step: ``steps`` must be 1 or None, and a trace has S = 1 and no halting head.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import check_model
from .model import Block, ModelConfig, PatchGrid, Preprocessing, Trace, ViTRMConfig, _init_weights, make_tokenizer


@dataclass
class ViTConfig(PatchGrid, ModelConfig):
    """The ViT baseline: a ViTRM's tokenizer and transformer layers, ``layers`` of them unshared,
    run once. The defaults are ViTRMConfig's; ``vit_config_for`` matches a ViTRM's depth."""

    arch: ClassVar[str] = "vit"
    trained_steps: ClassVar[int] = 1  # not recursive: one pass is its one step
    tokenizer: str = "patch"
    patch_size: int = 4
    conv_stages: int = 0
    dim: int = 64
    heads: int = 4
    mlp_ratio: float = 2.0
    layers: int = 3
    dropout: float = 0.0

    @property
    def effective_depth(self) -> int:
        return self.layers


@dataclass
class CNNConfig(ModelConfig):
    """The compact CNN baseline: one residual stage per width."""

    arch: ClassVar[str] = "cnn"
    trained_steps: ClassVar[int] = 1
    effective_depth: ClassVar[int] = 0  # no transformer layers to compare
    cnn_widths: tuple[int, ...] = (32, 64, 128)


def vit_config_for(cfg: ViTRMConfig) -> ViTConfig:
    """The ViT that applies as many transformer layers per image as ``cfg`` does at its trained steps."""
    shared = {k: v for k, v in cfg.to_dict().items() if k in ViTConfig.field_names()}
    return ViTConfig(**{**shared, "layers": cfg.effective_depth})


class _OneStep:
    config: ViTConfig | CNNConfig

    def _check_steps(self, steps):
        if steps is not None and (not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps != 1):
            raise ValueError(f"{self.config.arch} is not recursive: steps must be 1, got {steps!r}")

    def forward(self, images, steps=None, deep_supervision=False, no_grad_steps=0, detach_between_steps=True):
        """Logits [B, C]; with ``deep_supervision`` the ViTRM training interface: (logits [1, B, C], None)."""
        self._check_steps(steps)
        logits = self.head(self.features(images)[0])
        return (logits[None], None) if deep_supervision else logits

    @torch.no_grad()
    def trace(self, images, steps=None, attention=True) -> Trace:
        self._check_steps(steps)
        y, z = self.features(images)
        logits = self.head(y)
        return Trace(logits=logits[None], probs=logits.softmax(-1)[None], halt=None,
                     y=y[None], z=z[None], y_init=torch.zeros_like(y), z_init=torch.zeros_like(z))


class ViT(_OneStep, nn.Module, Preprocessing):
    def __init__(self, config: ViTConfig):
        super().__init__()
        check_model(config, "vit")
        self.config = config
        self.tokenizer = make_tokenizer(config)
        self.pos = nn.Parameter(torch.randn(1, config.num_tokens, config.dim) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, 1, config.dim) * 0.02)
        self.blocks = Block(config, layers=config.layers)
        self.head_norm = nn.LayerNorm(config.dim)
        self.fc = nn.Linear(config.dim, config.num_classes)
        self.apply(_init_weights)

    def features(self, images):
        """(class token [B, D], patch tokens [B, T, D])."""
        x = self.tokenizer(images).flatten(2).transpose(1, 2) + self.pos
        out, _ = self.blocks(torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1))
        return out[:, 0], out[:, 1:]

    def head(self, y):
        return self.fc(self.head_norm(y))


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Sequential() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CompactCNN(_OneStep, nn.Module, Preprocessing):
    """Stem, then one residual block per width; every width after the first halves the grid."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        check_model(config, "cnn")
        self.config = config
        w = config.cnn_widths
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, w[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(*(_ResidualBlock(w[max(i - 1, 0)], w[i], 1 if i == 0 else 2)
                                      for i in range(len(w))))
        self.fc = nn.Linear(w[-1], config.num_classes)

    def features(self, images):
        """(pooled features [B, W], final feature map as tokens [B, T, W])."""
        fmap = self.stages(self.stem(images))
        return fmap.mean((2, 3)), fmap.flatten(2).transpose(1, 2)

    def head(self, y):
        return self.fc(y)
