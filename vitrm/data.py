"""Datasets as uint8 tensors, decoded once, plus the torchvision v2 augmentation pipeline.

Data specs, as given to ``--data``:

    cifar10              torchvision CIFAR10 under --data-dir (downloaded only with --download)
    cifar100             torchvision CIFAR100, likewise
    imagefolder:PATH     PATH/train/<class>/*.jpg and PATH/test/<class>/*.jpg (torchvision ImageFolder)

Every split becomes ``Split(images uint8 [N, C, H, W], labels int64 [N], class_names)``.
Image folders are listed by ``vitrm.paths.scan_imagefolder`` (torchvision's order; linked folders
inside a class folder are not followed, FIFOs and devices are skipped with a count). They are
decoded once and cached as ``.npy`` (no pickle) under the cache
directory, keyed by the file list, so an epoch is never bound by JPEG decoding.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import UserError
from .paths import FolderListing

# torchvision is imported where it is used: importing it imports torch._dynamo (1.3 s of CPU on the 2-core machine),
# and the app's first page imports this module (vitrm.Split; docs/performance.md, Cold start).
if TYPE_CHECKING:
    from torchvision.transforms import v2


def default_cache() -> str:
    """Where decoded image folders are cached, as given: $VITRM_CACHE, else ``~/.cache/vitrm``. Unexpanded, so
    that a run's train_config.json names no home directory; ``load_split`` expands it. The one rule, for
    training (``TrainConfig.cache_dir``), evaluate and project alike."""
    return os.environ.get("VITRM_CACHE") or "~/.cache/vitrm"


DEFAULT_CACHE = Path(default_cache()).expanduser()      # the same, as this process started


class DataError(UserError, ValueError):
    """A data spec or directory cannot be used; the message says why."""


@dataclass
class Split:
    images: torch.Tensor        # uint8 [N, C, H, W]
    labels: torch.Tensor        # int64 [N]
    class_names: tuple[str, ...]
    name: str
    skipped: tuple[tuple[str, str], ...] = ()     # (file, why) of images left out as unreadable (skip_unreadable)

    def __len__(self):
        return len(self.labels)

    def subset(self, index: torch.Tensor, name: str | None = None) -> Split:
        return Split(self.images[index], self.labels[index], self.class_names, name or self.name)


def parse_spec(spec: str) -> tuple[str, str | None]:
    if spec in ("cifar10", "cifar100"):
        return spec, None
    if spec.startswith("imagefolder:") and len(spec) > len("imagefolder:"):
        return "imagefolder", spec.split(":", 1)[1]
    raise DataError(f"unknown dataset {spec!r}; expected 'cifar10', 'cifar100' or 'imagefolder:PATH'")


def check_spec(spec: str, data_dir: str | os.PathLike = "data", download: bool = False) -> None:
    """Fail fast, before anything is written, if ``spec`` cannot possibly load."""
    kind, path = parse_spec(spec)
    if kind == "imagefolder":
        from .paths import UnsafePathError, check_text
        try:
            root = Path(check_text(path))
        except UnsafePathError as e:
            raise DataError(str(e)) from None
        for split in ("train", "test"):
            if not (root / split).is_dir():
                raise DataError(f"{root / split}: not found; "
                                "imagefolder:PATH needs PATH/train/<class>/ and PATH/test/<class>/")
    elif not download:
        folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[kind]
        if not (Path(data_dir) / folder).is_dir():
            raise DataError(f"{Path(data_dir) / folder}: not found. Pass --data-dir where {kind} lives, "
                            "or --download where the internet is reachable.")


def load_split(spec: str, split: str, data_dir: str | os.PathLike = "data", image_size: int = 32,
               cache_dir: str | os.PathLike | None = DEFAULT_CACHE, download: bool = False,
               progress: bool = True, skip_unreadable: bool = False) -> Split:
    """Load ``split`` ("train" or "test") of ``spec`` as uint8 tensors.

    An image folder's unreadable image (empty, truncated, not an image) is a DataError naming it; with
    ``skip_unreadable`` it is left out and listed in ``Split.skipped`` instead (evaluate counts it: one bad file
    in ten thousand should not end a run). ``progress=False``: no decoding bar."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}")
    kind, path = parse_spec(spec)
    check_spec(spec, data_dir, download)
    if kind in ("cifar10", "cifar100"):
        from torchvision import datasets
        cls = datasets.CIFAR10 if kind == "cifar10" else datasets.CIFAR100
        try:
            ds = cls(root=str(data_dir), train=split == "train", download=download)
        except RuntimeError as e:
            raise DataError(f"{kind} in {data_dir}: {e}") from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return Split(images, torch.tensor(ds.targets, dtype=torch.int64), tuple(ds.classes), f"{kind}/{split}")
    return _load_imagefolder(Path(path), split, image_size, cache_dir, progress, skip_unreadable)


def _load_imagefolder(root: Path, split: str, image_size: int, cache_dir, progress: bool = True,
                      skip_unreadable: bool = False) -> Split:
    from tqdm import tqdm

    from .images import InvalidImageError, load_image, to_model_input

    folder = list_imagefolder(root / split)
    name = f"imagefolder:{root.name}/{split}"
    key = hashlib.sha256(repr((str(root.resolve()), split, image_size,
                               [(p, os.path.getsize(p)) for p, _ in folder.samples])).encode()).hexdigest()[:16]
    labels = torch.tensor(folder.targets, dtype=torch.int64)
    cache = Path(cache_dir).expanduser() / f"{root.name}-{split}-{image_size}-{key}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        images = np.load(cache, allow_pickle=False)
        if images.shape == (len(labels), 3, image_size, image_size):
            return Split(torch.from_numpy(images), labels, tuple(folder.classes), name)
    images = torch.empty(len(labels), 3, image_size, image_size, dtype=torch.uint8)
    skipped = []
    for i, (p, _) in enumerate(tqdm(folder.samples, desc=f"decoding {name}", unit="img", mininterval=1.0,
                                    disable=not progress)):
        try:
            images[i] = to_model_input(load_image(p), image_size)
        except InvalidImageError as e:
            if not skip_unreadable:
                raise DataError(f"{p}: {e}") from None
            skipped.append((p, str(e)))
    if skipped:                 # not cached: the cache holds a whole folder, in the order it lists
        bad = {p for p, _ in skipped}
        keep = torch.tensor([i for i, (p, _) in enumerate(folder.samples) if p not in bad], dtype=torch.int64)
        return Split(images[keep], labels[keep], tuple(folder.classes), name, tuple(skipped))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, images.numpy(), allow_pickle=False)
        os.replace(tmp, cache)
    return Split(images, labels, tuple(folder.classes), name)


def list_imagefolder(folder: Path, report=None) -> FolderListing:
    """The images of one split folder (``vitrm.paths.scan_imagefolder``), or DataError saying why not.

    Entries that cannot be images (linked folders, FIFOs, devices) are skipped; ``report`` (default:
    a line on stderr) is told how many, in one line.
    """
    import sys

    from .paths import UnsafePathError, scan_imagefolder
    try:
        listing = scan_imagefolder(folder)
    except UnsafePathError as e:
        raise DataError(str(e)) from None
    if not listing.samples:
        raise DataError(f"{folder}: no images found")
    if listing.skipped:
        (report or (lambda line: print(f"warning: {line}", file=sys.stderr)))(listing.skipped_note())
    return listing


def train_val_split(train: Split, val_size: int, seed: int = 0) -> tuple[Split, Split | None]:
    """Hold out ``val_size`` training images, chosen by a fixed permutation, for validation."""
    if val_size <= 0:
        return train, None
    if val_size >= len(train):
        raise DataError(f"val_size {val_size} leaves no training images out of {len(train)}")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return (train.subset(perm[val_size:], train.name),
            train.subset(perm[:val_size], train.name.replace("train", "val")))


# --------------------------------------------------------------------------- augmentation

@dataclass
class AugmentConfig:
    crop_padding: int = 4          # 0 turns random crop off
    flip: bool = True
    randaugment_ops: int = 2       # 0 turns RandAugment off
    randaugment_magnitude: int = 9
    mixup_alpha: float = 0.0       # 0 turns MixUp off
    cutmix_alpha: float = 0.0      # 0 turns CutMix off


def image_transform(aug: AugmentConfig, image_size: int) -> v2.Transform:
    """Per-image uint8 -> uint8 augmentation."""
    from torchvision.transforms import v2
    steps: list[v2.Transform] = []
    if aug.crop_padding:
        steps.append(v2.RandomCrop(image_size, padding=aug.crop_padding, padding_mode="reflect"))
    if aug.flip:
        steps.append(v2.RandomHorizontalFlip())
    if aug.randaugment_ops:
        steps.append(v2.RandAugment(num_ops=aug.randaugment_ops, magnitude=aug.randaugment_magnitude))
    return v2.Compose(steps) if steps else v2.Identity()


def batch_mix(aug: AugmentConfig, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix on whole batches; returns soft targets [B, C]."""
    from torchvision.transforms import v2
    mixes = []
    if aug.mixup_alpha > 0:
        mixes.append(v2.MixUp(alpha=aug.mixup_alpha, num_classes=num_classes))
    if aug.cutmix_alpha > 0:
        mixes.append(v2.CutMix(alpha=aug.cutmix_alpha, num_classes=num_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)


class AugmentedImages(Dataset):
    def __init__(self, split: Split, transform: v2.Transform | None = None):
        self.split, self.transform = split, transform

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        image = self.split.images[i]
        return (self.transform(image) if self.transform else image), self.split.labels[i]

