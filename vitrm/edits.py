"""What if the image were different? Small edits of a model input, and where two traces part.

An edit list is data: a few ``Edit`` values, each a kind and one amount (or, to cover patches, the
patch indices). ``apply(image, edits, grid)`` is a pure function of the uint8 model input [3, H, W]
and that list: the same list on the same image gives the same pixels, byte for byte (the noise is
seeded), so an edited image can be traced, cached and compared like any other.

    kind         amount                                           what it does
    cover        (patches: indices on the model's token grid)     fills those patches with mid grey
    noise        0.01 .. 0.5  (std, as a share of the 0-255 range)  adds Gaussian noise, seeded
    blur         0.2 .. 4     (sigma, pixels)                      Gaussian blur
    brightness   0 .. 3       (factor; 1 leaves it)                scales brightness
    crop         0.25 .. 1    (share of the side kept)             centre crop, resized back
    rotate       -180 .. 180  (degrees)                            rotates about the centre, grey corners

``validate`` bounds a list (at most MAX_EDITS edits, each amount in its range, patches on the grid),
so a list from anywhere, a session or a link, costs at most that much work. ``parting_steps`` says
at which steps two traces' answers differ: where the edit changed what the model thinks.

The pixel work is torchvision's (``transforms.v2.functional``), on tensors, imported by the first edit that needs it:
importing torchvision imports torch._dynamo with it (1.3 s of CPU on the 2-core machine), and the app's first page
imports this module (docs/performance.md, Cold start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError

__all__ = ["Edit", "EditError", "KINDS", "MAX_EDITS", "MAX_GRID", "COVER_FILL", "NOISE_SEED", "validate", "apply",
           "patch_box", "parting_steps", "describe"]

# kind -> (lowest amount, highest amount, the amount that leaves the image as it is, what it means)
KINDS: dict[str, tuple[float, float, float, str]] = {
    "cover": (0.0, 0.0, 0.0, "patches covered with grey"),
    "noise": (0.01, 0.5, 0.0, "Gaussian noise, std as a share of the pixel range"),
    "blur": (0.2, 4.0, 0.0, "Gaussian blur, sigma in pixels"),
    "brightness": (0.0, 3.0, 1.0, "brightness factor"),
    "crop": (0.25, 1.0, 1.0, "share of the side kept by a centre crop"),
    "rotate": (-180.0, 180.0, 0.0, "rotation in degrees"),
}
MAX_EDITS = 8
MAX_GRID = 64                   # a grid of 64x64 patches: more than any shipped tokenizer makes
COVER_FILL = 128                # mid grey, on every channel (also the corners a rotation uncovers)
NOISE_SEED = 0


class EditError(UserError, ValueError):
    """An edit list that cannot be applied; the message says which edit and why."""


@dataclass(frozen=True)
class Edit:
    kind: str
    amount: float = 0.0
    patches: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "patches", tuple(self.patches))


def validate(edits, grid: int) -> tuple[Edit, ...]:
    """``edits`` as a tuple of Edit, or EditError: at most MAX_EDITS, known kinds, amounts in range, patches
    that exist on a ``grid`` x ``grid`` token grid (each once)."""
    edits = tuple(edits)
    if len(edits) > MAX_EDITS:
        raise EditError(f"at most {MAX_EDITS} edits at once, got {len(edits)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or not 1 <= grid <= MAX_GRID:
        raise EditError(f"the token grid must be 1..{MAX_GRID} patches on a side, got {grid!r}")
    for i, e in enumerate(edits, start=1):
        if not isinstance(e, Edit) or e.kind not in KINDS:
            raise EditError(f"edit {i}: unknown kind {getattr(e, 'kind', e)!r}; expected one of {', '.join(KINDS)}")
        if e.kind == "cover":
            p = e.patches
            if not p or len(p) > grid * grid or len(set(p)) != len(p) or not all(
                    isinstance(k, int) and not isinstance(k, bool) and 0 <= k < grid * grid for k in p):
                raise EditError(f"edit {i}: cover needs distinct patch indices in 0..{grid * grid - 1}")
            continue
        low, high, _, meaning = KINDS[e.kind]
        a = e.amount
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or not low <= a <= high:
            raise EditError(f"edit {i}: {e.kind} amount {a!r} is outside {low:g}..{high:g} ({meaning})")
    return edits


def patch_box(patch: int, grid: int, size: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) in pixels of patch ``patch`` (row by row) on a ``grid`` x ``grid`` grid over a
    ``size`` x ``size`` image."""
    row, col = divmod(patch, grid)
    return row * size // grid, col * size // grid, (row + 1) * size // grid, (col + 1) * size // grid


def _one(image: torch.Tensor, e: Edit, grid: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    if e.kind == "cover":
        out = image.clone()
        for p in e.patches:
            top, left, bottom, right = patch_box(p, grid, h)
            out[:, top:bottom, left:right] = COVER_FILL
        return out
    if e.kind == "noise":
        noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(NOISE_SEED))
        return (image.float() + noise * e.amount * 255).round().clamp(0, 255).to(torch.uint8)
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F
    if e.kind == "blur":
        kernel = min(2 * math.ceil(3 * e.amount) + 1, (min(h, w) - 1) // 2 * 2 + 1)
        return F.gaussian_blur(image, kernel_size=[kernel, kernel], sigma=[e.amount, e.amount])
    if e.kind == "brightness":
        return F.adjust_brightness(image, e.amount)
    if e.kind == "crop":
        side_h, side_w = max(1, round(h * e.amount)), max(1, round(w * e.amount))
        return F.resized_crop(image, (h - side_h) // 2, (w - side_w) // 2, side_h, side_w, [h, w], antialias=True)
    return F.rotate(image, e.amount, interpolation=v2.InterpolationMode.BILINEAR, fill=[COVER_FILL] * image.shape[0])


def apply(image: torch.Tensor, edits, grid: int) -> torch.Tensor:
    """``image`` (uint8 [C, H, W], a model input) with ``edits`` applied in order; the input is not changed."""
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3:
        raise EditError("expected a uint8 image tensor [C, H, W] (a model input)")
    out = image
    for e in validate(edits, grid):
        out = _one(out, e, grid)
    return out.contiguous()


def parting_steps(probs_a, probs_b) -> list[int]:
    """The steps (1-based) at which two traces of one model answer differently: ``probs_a``, ``probs_b`` [S, C]
    (each trace's class probabilities after every step; the shorter sets the steps compared)."""
    a, b = np.asarray(probs_a), np.asarray(probs_b)
    steps = min(len(a), len(b))
    differ = a[:steps].argmax(-1) != b[:steps].argmax(-1)
    return [int(s) + 1 for s in np.flatnonzero(differ)]


def describe(e: Edit) -> str:
    """One edit in words, for a caption."""
    if e.kind == "cover":
        return f"cover patch{'es' if len(e.patches) > 1 else ''} {', '.join(map(str, sorted(e.patches)))}"
    unit = {"noise": f"noise {e.amount:.0%}", "blur": f"blur {e.amount:g} px",
            "brightness": f"brightness x{e.amount:g}", "crop": f"crop to {e.amount:.0%} of the side",
            "rotate": f"rotate {e.amount:g}°"}
    return unit[e.kind]
