"""Which pixels made the model say what it said at step t: captum on "the model run to step t".

A recursive model gives one answer per step, so "why cat?" has one answer per step too.
``StepModel`` freezes the step count: it is the model run to exactly ``steps`` steps from the
same learned initial states, a plain ``images -> logits`` function that captum can attribute.

    from vitrm.attribution import attribute
    result = attribute(model, images, steps=3, method="integrated_gradients")
    result.maps        # [B, H, W]: attribution per pixel, summed over colour channels
    result.seconds     # wall time of the captum call

Choices, and why:

* Every method attributes the class predicted at that step unless ``target`` names one, so
  a row across steps can either follow the changing answer or hold one class fixed.
* The reference image ("nothing there") for Integrated Gradients and Occlusion is all zeros
  after normalization, i.e. the training set's mean colour, not black.
* GradientShap draws its reference images and noise from a fixed seed, so the same call
  gives the same map; the global torch and numpy random states are put back afterwards.
* The model is put in eval mode for the call (and restored afterwards): Occlusion runs many
  perturbed copies in one batch, and a prediction must not depend on batch composition.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

METHODS = {
    "integrated_gradients": "Integrated Gradients",
    "saliency": "Saliency",
    "gradient_shap": "GradientShap",
    "occlusion": "Occlusion",
}

IG_STEPS = 32                 # Riemann steps along the path from the reference image
SHAP_SAMPLES = 16             # noisy samples per image
SHAP_REFERENCES = 8           # random reference images, plus the mean image
SHAP_STDEV = 0.1              # in normalized units
OCCLUSION_PER_EVAL = 64       # perturbed copies per forward pass


class StepModel(nn.Module):
    """``images -> logits`` of ``model`` run to exactly ``steps`` recursion steps."""

    def __init__(self, model: nn.Module, steps: int | None):
        super().__init__()
        self.model = model
        self.steps = steps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, steps=self.steps)


@dataclass
class Attribution:
    method: str                 # a key of METHODS
    steps: int | None           # the step the model was run to (None: its trained count)
    target: torch.Tensor        # [B] the class attributed, per image
    maps: torch.Tensor          # [B, H, W] attribution per pixel, summed over channels
    seconds: float              # wall time of the captum call alone


@contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def _seeded(seed: int):
    """Seed torch and numpy (captum draws from both) and put both states back afterwards."""
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)


def _occlusion_window(image_size: int) -> tuple[int, int]:
    """(window, stride): an eighth of the image, moved by half a window."""
    window = max(1, image_size // 8)
    return window, max(1, window // 2)


def _run(method: str, forward: StepModel, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # captum is imported on first use, so that naming the methods (METHODS) stays cheap for the app.
    from captum.attr import GradientShap, IntegratedGradients, Occlusion, Saliency

    zeros = torch.zeros_like(images)
    if method == "integrated_gradients":
        return IntegratedGradients(forward).attribute(
            images, baselines=zeros, target=target, n_steps=IG_STEPS, internal_batch_size=IG_STEPS * len(images))
    if method == "saliency":
        return Saliency(forward).attribute(images, target=target, abs=True)
    if method == "gradient_shap":
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn((SHAP_REFERENCES,) + images.shape[1:], generator=generator)
        references = torch.cat([zeros[:1], noise.to(images)])
        with _seeded(0):
            return GradientShap(forward).attribute(
                images, baselines=references, target=target, n_samples=SHAP_SAMPLES, stdevs=SHAP_STDEV)
    if method == "occlusion":
        window, stride = _occlusion_window(images.shape[-1])
        channels = images.shape[1]
        return Occlusion(forward).attribute(
            images, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
            baselines=0.0, target=target, perturbations_per_eval=OCCLUSION_PER_EVAL)
    raise ValueError(f"unknown attribution method {method!r}; expected one of {sorted(METHODS)}")


def attribute(model: nn.Module, images: torch.Tensor, steps: int | None = None,
              method: str = "integrated_gradients",
              target: int | Sequence[int] | torch.Tensor | None = None) -> Attribution:
    """Attribute the logits of ``model`` run to ``steps`` steps back to the pixels of ``images``.

    ``images`` is a normalized batch [B, C, H, W] (``model.preprocess`` output). ``target``
    is one class for every image, one class per image, or None for the class each image is
    predicted at that step.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; expected one of {sorted(METHODS)}")
    forward = StepModel(model, steps)
    # A leaf that needs gradients: captum would otherwise set the flag itself, with a warning.
    images = images.detach().clone().requires_grad_(method != "occlusion")
    with _eval_mode(model):
        if target is None:
            with torch.no_grad():
                target = forward(images).argmax(-1)
        target = torch.as_tensor(target, dtype=torch.long).expand(len(images)).clone()
        start = time.perf_counter()
        maps = _run(method, forward, images, target)
        seconds = time.perf_counter() - start
    return Attribution(method=method, steps=steps, target=target,
                       maps=maps.detach().sum(dim=1), seconds=seconds)


def attribute_steps(model: nn.Module, images: torch.Tensor, steps: Iterable[int],
                    method: str = "integrated_gradients",
                    target: int | Sequence[int] | torch.Tensor | None = None) -> list[Attribution]:
    """The same method at each of ``steps``: does the evidence sharpen as recursion goes on?

    With ``target=None`` each step explains its own prediction; pass a class to hold it fixed.
    """
    return [attribute(model, images, s, method, target) for s in steps]
