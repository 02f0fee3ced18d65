"""Training throughput of candidate flagship recipes, side by side in one run.

    python -m bench.recipe_speed

Measures images/s of one deep-supervision training step (forward over all N steps, backward,
AdamW) at batch 128 on random 32x32 data, for the configurations weighed in
checkpoints/EXPERIMENTS.md, and prints each relative to the first.
"""

import time

import torch
import torch.nn.functional as F

from vitrm import ViTRM, ViTRMConfig, num_parameters

CANDIDATES = [
    dict(tokenizer="patch", patch_size=4, dim=64, combine="add", latent_updates=2, trained_steps=4),
    dict(tokenizer="patch", patch_size=4, dim=64, combine="concat", latent_updates=2, trained_steps=4),
    dict(tokenizer="conv", patch_size=4, dim=64, combine="add", latent_updates=2, trained_steps=4),
    dict(tokenizer="conv", patch_size=4, dim=96, combine="add", latent_updates=2, trained_steps=4),
    dict(tokenizer="conv", patch_size=8, dim=128, combine="add", latent_updates=1, trained_steps=4),
    dict(tokenizer="conv", patch_size=8, dim=128, combine="add", latent_updates=2, trained_steps=4),
]


def images_per_second(cfg: ViTRMConfig, batch: int = 128, iters: int = 3) -> float:
    model = ViTRM(cfg)
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for i in range(iters + 1):
        if i == 1:
            start = time.perf_counter()
        logits, _ = model(x, deep_supervision=True)
        loss = sum(F.cross_entropy(step, y) for step in logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * iters / (time.perf_counter() - start)


def main():
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    base = None
    for kw in CANDIDATES:
        cfg = ViTRMConfig(heads=4, **kw)
        speed = images_per_second(cfg)
        base = base or speed
        print(f"{str(kw):110s} params {num_parameters(ViTRM(cfg)):>8,}  {speed:6.0f} img/s  x{speed / base:.2f}")


if __name__ == "__main__":
    main()
