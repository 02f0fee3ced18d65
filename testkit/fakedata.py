"""Tiny datasets written the way the real ones lie on disk, so tests never need the internet.

* ``write_cifar10`` / ``write_cifar100``: torchvision's layout (``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch``, ``batches.meta``; ``cifar-100-python/train``, ``test``, ``meta``), each file a
  pickled dict with the keys of the real one.
* ``write_imagefolder``: ``ROOT/train/<class>/*.png`` and ``ROOT/test/<class>/*.png``.

Images are learnable: each class has its own colour, plus noise, so a few epochs of a tiny
model beat chance. torchvision checks the real files' md5 sums, which fake files cannot
match; ``accept_fake_cifar`` relaxes that check to "the file exists" for one test.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def class_images(labels: list[int], num_classes: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [N, size, size, 3]: a colour per class (spread over the hue circle) plus noise."""
    rng = np.random.default_rng(seed)
    hues = np.linspace(0, 1, num_classes, endpoint=False)
    base = np.stack([np.clip(np.abs(((hues + shift) % 1) * 6 - 3) - 1, 0, 1) for shift in (0, 2 / 3, 1 / 3)], 1)
    images = base[labels][:, None, None, :] * 200 + rng.integers(0, 56, (len(labels), size, size, 3))
    return images.astype(np.uint8)


def _labels(per_class: int, num_classes: int, seed: int) -> list[int]:
    labels = np.repeat(np.arange(num_classes), per_class)
    np.random.default_rng(seed).shuffle(labels)
    return labels.tolist()


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """CIFAR stores each image as one row: 1024 red, 1024 green, then 1024 blue values."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_cifar10(root: Path, train_per_class: int = 10, test_per_class: int = 3, seed: int = 0) -> Path:
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = _labels(train_per_class, 10, seed)
    batches = np.array_split(np.arange(len(train_labels)), 5)
    train_images = class_images(train_labels, 10, seed=seed)
    for i, idx in enumerate(batches, start=1):
        _pickle(folder / f"data_batch_{i}", {
            "batch_label": f"training batch {i} of 5", "labels": [train_labels[j] for j in idx],
            "data": _cifar_rows(train_images[idx]), "filenames": [f"train_{j}.png" for j in idx]})
    test_labels = _labels(test_per_class, 10, seed + 1)
    _pickle(folder / "test_batch", {
        "batch_label": "testing batch 1 of 1", "labels": test_labels,
        "data": _cifar_rows(class_images(test_labels, 10, seed=seed + 1)),
        "filenames": [f"test_{j}.png" for j in range(len(test_labels))]})
    _pickle(folder / "batches.meta", {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": len(batches[0]),
                                      "num_vis": 3072})
    return Path(root)


def write_cifar100(root: Path, train_per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> Path:
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    fine = [f"fine_{i:02d}" for i in range(100)]
    coarse = [f"coarse_{i:02d}" for i in range(20)]
    for name, per_class, s in (("train", train_per_class, seed), ("test", test_per_class, seed + 1)):
        labels = _labels(per_class, 100, s)
        _pickle(folder / name, {
            "filenames": [f"{name}_{j}.png" for j in range(len(labels))], "batch_label": f"{name} batch",
            "fine_labels": labels, "coarse_labels": [label // 5 for label in labels],
            "data": _cifar_rows(class_images(labels, 100, seed=s))})
    _pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": coarse})
    return Path(root)


def accept_fake_cifar(monkeypatch) -> None:
    """Let torchvision's CIFAR classes read fake files: the md5 check becomes an existence check."""
    import torchvision.datasets.cifar as cifar
    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def write_imagefolder(root: Path, classes=tuple(CIFAR10_CLASSES[:3]), train_per_class: int = 10,
                      test_per_class: int = 3, size: int = 32, fmt: str = "png", seed: int = 0) -> Path:
    root = Path(root)
    for split, per_class, s in (("train", train_per_class, seed), ("test", test_per_class, seed + 1)):
        labels = sorted(_labels(per_class, len(classes), s))
        images = class_images(labels, len(classes), size, seed=s)
        for i, (label, pixels) in enumerate(zip(labels, images)):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{i:04d}.{fmt}")
    return root
