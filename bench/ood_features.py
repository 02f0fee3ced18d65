"""Which feature tells images outside the classes apart? The probe behind vitrm.ood's choice of z.

    .venv/bin/python -m bench.ood_features checkpoints/vitrm-cifar10 --outside .data/outside-photos

For each candidate score, the threshold is the one that flags 5% of the 5,000 validation images (as
vitrm.ood sets it); then it reports how many photos of ``--outside`` (images known to be none of the
classes; checkpoints/EXPERIMENTS.md, section 14, says how to get the 22 used there) and what share of
500 uniform-noise images it flags, and which photos it flags. Candidates, all at the trained N:

* ``y``, ``z``, ``y+z``: squared Mahalanobis distance to the nearest class mean (vitrm.ood's rule) of the
  answer token as the head reads it, of the latent tokens averaged, and of both side by side;
* ``max prob``: minus the top class probability; ``energy``: minus the logsumexp of the logits;
* ``2N drift``: how far the probabilities move between N and 2N steps (a recursive model's own signal).

The class means are fitted on 5,000 training images (not the validation ones). The test set is not used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image

import vitrm
from vitrm import ood
from vitrm.analysis import normalize

MAHALANOBIS = ("y", "z", "y+z")


@torch.no_grad()
def candidate_scores(model, images: torch.Tensor, batch: int = 500) -> dict[str, torch.Tensor]:
    """Per candidate: Mahalanobis features [B, D] (for MAHALANOBIS) or scores [B] (higher: more unusual)."""
    n = model.config.trained_steps
    out = {}
    for start in range(0, len(images), batch):
        t = model.trace(images[start:start + batch], 2 * n, attention=False)
        y, z = ood.trace_features(model, t, "y"), ood.trace_features(model, t, "z")
        parts = {"y": y, "z": z, "y+z": torch.cat([y, z], 1),
                 "max prob": -t.probs[n - 1].max(-1).values,
                 "energy": -torch.logsumexp(t.logits[n - 1], -1),
                 "2N drift": (t.probs[n - 1] - t.probs[2 * n - 1]).abs().sum(-1)}
        for k, v in parts.items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--outside", type=Path, required=True, help="a folder of images none of the classes")
    parser.add_argument("--data", default="imagefolder:../shared/datasets/cifar10-jpeg")
    parser.add_argument("--fit-images", type=int, default=5000)
    args = parser.parse_args()
    files = sorted(p for p in args.outside.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    print(f"| checkpoint | score | photos flagged (of {len(files)}) | uniform noise flagged | photos flagged |")
    print("|---|---|---|---|---|")
    for path in args.checkpoints:
        model = vitrm.load(path)
        cfg = model.config
        train, val = ood.fit_splits(Path(path), args.data, cfg.image_size, args.fit_images)
        fitted = candidate_scores(model, normalize(train.images, cfg.mean, cfg.std))
        held_out = candidate_scores(model, normalize(val.images, cfg.mean, cfg.std))
        photos = candidate_scores(model, model.preprocess([Image.open(f).convert("RGB") for f in files]))
        noise = torch.randint(0, 256, (500, 3, cfg.image_size, cfg.image_size),
                              generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        noisy = candidate_scores(model, normalize(noise, cfg.mean, cfg.std))
        for name in fitted:
            if name in MAHALANOBIS:
                rule = ood.fit(fitted[name], train.labels, held_out[name], 0.05)
                score, threshold = rule.score, rule.threshold
            else:
                score, threshold = (lambda s: s.double()), float(torch.quantile(held_out[name].double(), 0.95))
            flagged = (score(photos[name]) > threshold).tolist()
            noise_rate = (score(noisy[name]) > threshold).double().mean()
            print(f"| {Path(path).name} | {name} | {sum(flagged)} | {noise_rate:.0%} | "
                  f"{', '.join(f.stem for f, hit in zip(files, flagged) if hit)} |", flush=True)


if __name__ == "__main__":
    main()
