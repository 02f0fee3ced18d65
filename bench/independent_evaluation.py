"""Check a checkpoint's recorded accuracy with nothing but the public API and torchvision.

    .venv/bin/python -m bench.independent_evaluation checkpoints/vitrm-cifar10 ../shared/datasets/cifar10-jpeg/test

No vitrm.data and no vitrm.evaluate: the images are read by torchvision's ImageFolder as PIL
images and go through ``model.preprocess`` and ``model(...)``, the path an outside user takes
(the README's "library in five lines"). Prints the top-1 at the trained step count beside the one
in the checkpoint's metrics.json, and the difference.
"""

from __future__ import annotations

import argparse

import torch
from torchvision.datasets import ImageFolder
from tqdm import tqdm

import vitrm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("folder", help="an ImageFolder: one subfolder per class, named as the model's classes")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    model = vitrm.load(args.checkpoint)
    data = ImageFolder(args.folder)
    assert data.classes == list(model.config.class_names), "the folder's classes differ from the model's"
    correct = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(data), args.batch_size), desc="independent evaluation", unit="batch"):
            items = [data[i] for i in range(start, min(start + args.batch_size, len(data)))]
            images = model.preprocess([image for image, _ in items])
            labels = torch.tensor([label for _, label in items])
            correct += (model(images).argmax(-1) == labels).sum().item()
    top1 = correct / len(data)
    metrics = vitrm.read_metrics(args.checkpoint) or {}
    steps = model.config.trained_steps if model.config.recursive else 1
    recorded = (metrics.get("top1_by_step") or [None] * steps)[steps - 1]
    print(f"{args.checkpoint}: top-1 {100 * top1:.2f}% on {len(data):,} images of {args.folder} at N={steps}")
    if recorded is not None:
        print(f"metrics.json records {100 * recorded:.2f}% on {metrics.get('num_images'):,} images of "
              f"{metrics.get('data')}; difference {100 * (top1 - recorded):+.2f} points")


if __name__ == "__main__":
    main()
