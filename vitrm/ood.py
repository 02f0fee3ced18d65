"""Is an image probably none of the model's classes? One rule, fitted and thresholded offline.

The rule (Lee et al., 2018, "a simple unified framework for detecting out-of-distribution samples"):
the feature is the latent state z after the trained step count, averaged over its tokens (``"z"``, the
default), or the answer token y there as the class head reads it (``"y"``, ``head_norm(y)``). Class means
and one shared covariance are fitted on training images (the validation images held out by ``vitrm.train``
are not used). An image's score is its squared
Mahalanobis distance to the nearest class mean. The threshold is the score that a chosen share of
the **validation** images exceeds (5% by default): that share is the rule's false-alarm rate on
in-distribution images, measured and stored with it. The test split is scored once, to report.

    python -m vitrm.ood CHECKPOINT --data imagefolder:../shared/datasets/cifar10-jpeg

writes ``ood.safetensors`` (class means, precision matrix) and ``ood.json`` (rule, threshold and
measured rates) into the checkpoint. ``load`` reads and checks them; a model without them simply
gets no warning.

Why z: on 22 photos of things outside CIFAR-10's classes (scikit-image's sample images: an astronaut, a
coffee cup, coins, a rocket, text, ...) and on uniform noise, with the threshold at 5% of validation
images, the z rule flagged 18, 18 and 15 of the 22 photos and all noise on three shipped models, the y rule
15, 9 and 7 photos and, on the flagship, 3% of noise (checkpoints/EXPERIMENTS.md, section 14). The answer
token is trained to be confident; the latent state keeps more of what the image looked like.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from .checkpoint import CheckpointError, read_config

__all__ = ["OODRule", "FEATURES", "WEIGHTS", "FACTS", "fit", "fit_splits", "features", "trace_features", "load", "save"]

WEIGHTS, FACTS = "ood.safetensors", "ood.json"
FEATURES = {"z": "the latent state z after the trained step count, averaged over its tokens",
            "y": "the answer token y after the trained step count, layer-normed as the class head reads it"}


def rule_text(feature: str) -> str:
    return (f"squared Mahalanobis distance of {FEATURES[feature]}, to the nearest class mean, one covariance "
            "shared by all classes")


@dataclass
class OODRule:
    means: torch.Tensor        # [C, D]
    precision: torch.Tensor    # [D, D]
    threshold: float
    facts: dict                # what ood.json records: rule, feature, rates, sizes, data

    @property
    def feature(self) -> str:
        # A rule written before z was an option recorded no feature: it was fitted on y.
        return self.facts.get("feature", "y")

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """[B] squared distance to the nearest class mean, for features [B, D]."""
        diff = features.double()[:, None, :] - self.means.double()[None]          # [B, C, D]
        d2 = torch.einsum("bcd,de,bce->bc", diff, self.precision.double(), diff)
        return d2.min(1).values

    def unusual(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features) > self.threshold


@torch.no_grad()
def trace_features(model, trace, feature: str = "z") -> torch.Tensor:
    """[B, D]: ``feature`` (a key of FEATURES) after the trained step count, from a trace that reaches it."""
    step = model.config.trained_steps - 1
    if feature == "z":
        return trace.z[step].mean(1)
    if feature == "y":
        return model.head_norm(trace.y[step])
    raise ValueError(f"unknown feature {feature!r}; expected one of {sorted(FEATURES)}")


@torch.no_grad()
def features(model, images: torch.Tensor, feature: str = "z", batch: int = 500) -> torch.Tensor:
    """[B, D]: the same for normalized images [B, 3, H, W]."""
    return torch.cat([trace_features(model, model.trace(images[start:start + batch], attention=False), feature)
                      for start in range(0, len(images), batch)])


def fit(train_features: torch.Tensor, train_labels: torch.Tensor, val_features: torch.Tensor,
        false_alarm: float = 0.05, shrinkage: float = 1e-3, feature: str = "z") -> OODRule:
    """Means and shared covariance from the training features; the threshold from the validation ones."""
    x = train_features.double()
    classes = int(train_labels.max()) + 1
    means = torch.stack([x[train_labels == c].mean(0) for c in range(classes)])
    centred = x - means[train_labels]
    cov = centred.T @ centred / len(x)
    cov += shrinkage * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
    rule = OODRule(means=means, precision=torch.linalg.inv(cov), threshold=math.inf, facts={})
    val_scores = rule.score(val_features)
    rule.threshold = float(torch.quantile(val_scores, 1 - false_alarm))
    rule.facts = {"rule": rule_text(feature), "feature": feature, "threshold": rule.threshold,
                  "target_false_alarm": false_alarm,
                  "val_false_alarm": float((val_scores > rule.threshold).double().mean()),
                  "val_images": len(val_features), "fit_images": len(train_features)}
    return rule


def save(rule: OODRule, checkpoint: Path) -> None:
    save_file({"means": rule.means.float().contiguous(), "precision": rule.precision.float().contiguous()},
              str(checkpoint / WEIGHTS))
    (checkpoint / FACTS).write_text(json.dumps(rule.facts, indent=2) + "\n", encoding="utf-8")


def load(checkpoint: Path, budget=None, config=None) -> OODRule | None:
    """The checkpoint's rule, None when it has none; CheckpointError when its files are damaged.

    Both files go through the side-file gate (``vitrm.sidefiles.read_ood``): size caps, a schema for
    ood.json, and the checkpoint's ``budget`` when the caller reads its files as one (the app does, with the
    ``config`` it has already read)."""
    from .sidefiles import read_ood
    checkpoint = Path(checkpoint)
    config = read_config(checkpoint) if config is None else config
    found = read_ood(checkpoint, config.num_classes, config.dim, budget)
    if found is None:
        return None
    facts, tensors = found
    means, precision = tensors.get("means"), tensors.get("precision")
    shape_ok = (means is not None and precision is not None
                and tuple(means.shape) == (config.num_classes, config.dim)
                and tuple(precision.shape) == (config.dim, config.dim))
    if not shape_ok or not (torch.isfinite(means).all() and torch.isfinite(precision).all()):
        raise CheckpointError(f"{checkpoint / WEIGHTS}: shapes or values do not fit the model's config")
    return OODRule(means=means, precision=precision, threshold=float(facts["threshold"]), facts=facts)


def main(argv=None) -> None:
    from . import load as load_model
    from .data import load_split

    parser = argparse.ArgumentParser(prog="python -m vitrm.ood", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", required=True, help="the data spec the model was trained on")
    parser.add_argument("--false-alarm", type=float, default=0.05, help="share of validation images flagged")
    parser.add_argument("--fit-images", type=int, default=10000, help="training images the means are fitted on")
    parser.add_argument("--feature", choices=sorted(FEATURES), default="z", help="what the distance is measured on")
    parser.add_argument("--outside", type=Path,
                        help="a folder of images known to be none of the classes: the share flagged is recorded")
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint)
    cfg = model.config

    def prepared(split):
        return prepared_images(split.images, cfg)

    train, val = fit_splits(args.checkpoint, args.data, cfg.image_size, args.fit_images)
    feature = args.feature
    rule = fit(features(model, prepared(train), feature), train.labels, features(model, prepared(val), feature),
               args.false_alarm, feature=feature)
    test = load_split(args.data, "test", image_size=cfg.image_size)
    rule.facts["test_false_alarm"] = float(rule.unusual(features(model, prepared(test), feature)).double().mean())
    noise = torch.randint(0, 256, (500, 3, cfg.image_size, cfg.image_size), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    flagged = rule.unusual(features(model, prepared_images(noise, cfg), feature))
    rule.facts["uniform_noise_flagged"] = float(flagged.double().mean())
    if args.outside is not None:
        rule.facts |= outside_facts(rule, model, args.outside)
    rule.facts |= {"data": args.data, "test_images": len(test), "trained_steps": cfg.trained_steps}
    save(rule, args.checkpoint)
    print(json.dumps(rule.facts, indent=2))


def fit_splits(checkpoint: Path, data: str, image_size: int, fit_images: int):
    """(training images the means are fitted on: a fixed random ``fit_images`` of them, the validation split that
    ``vitrm.train`` held out when it trained ``checkpoint``, on which the threshold is set)."""
    from .data import load_split, train_val_split
    from .sidefiles import read_train_config
    from .train import TrainConfig

    recorded = read_train_config(checkpoint) or {}
    val_size = int(recorded.get("val_size", TrainConfig.val_size))      # what train_config.json says it held out
    if val_size <= 0:
        raise CheckpointError(f"{checkpoint} was trained with no validation split: the threshold is set on one")
    train, val = train_val_split(load_split(data, "train", image_size=image_size), val_size)
    keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:fit_images]
    return train.subset(keep), val


def outside_facts(rule: OODRule, model, folder: Path) -> dict:
    """How many of the images in ``folder`` (known to be none of the classes) the rule flags, and which."""
    from PIL import Image

    from .errors import UsageError
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    pictures, names = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                pictures.append(im.convert("RGB"))
            names.append(p.name)
        except OSError:
            continue            # not an image: the folder may hold a README
    if not pictures:
        raise UsageError(f"{folder}: no readable image")
    flagged = rule.unusual(features(model, model.preprocess(pictures), rule.feature)).tolist()
    return {"outside_folder": str(folder), "outside_images": len(names),
            "outside_flagged": sum(flagged) / len(names),
            "outside_missed": [n for n, f in zip(names, flagged) if not f]}


def prepared_images(images: torch.Tensor, cfg) -> torch.Tensor:
    from .analysis import normalize
    return normalize(images, cfg.mean, cfg.std)


if __name__ == "__main__":
    main()
