"""Numbers the views show, derived from one image's ``Trace`` (pure functions, no Streamlit).

Everything here reads trace tensors for one image ``b`` and returns small numpy arrays or
tables, so it can be cached once per trace and tested without a browser.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from vitrm import AttentionMaps, Trace, analysis

HALT_THRESHOLD = analysis.HALT_THRESHOLD


# --------------------------------------------------------------------------- predictions

def prediction_changes(probs: np.ndarray, class_names) -> list[str]:
    """'step 3: cat -> dog' for every step whose top class differs from the step before."""
    top = probs.argmax(-1)
    return [f"step {s + 1}: {class_names[top[s - 1]]} -> {class_names[top[s]]}"
            for s in range(1, len(top)) if top[s] != top[s - 1]]


halting_step = analysis.halting_step     # the first step that reaches the threshold, None if none does


def per_step_table(trace: Trace, b: int, class_names) -> pd.DataFrame:
    """One row per step: the answer, its confidence, halting, update sizes, every probability."""
    probs = trace.probs[:, b].numpy()
    top = probs.argmax(-1)
    columns = {
        "step": np.arange(1, len(probs) + 1),
        "top_class": [class_names[i] for i in top],
        "top_prob": probs.max(-1),
        "halt_prob": trace.halt[:, b].numpy() if trace.halt is not None else np.full(len(probs), np.nan),
        "y_update": trace.y_update_norm()[:, b].numpy(),
        "z_update": trace.z_update_norm()[:, b].numpy(),
    }
    # The class columns as one block: a column each, one by one or in one dict, cost more than the rest of the
    # table, and with 100,000 classes most of a first page's run.
    classes = pd.DataFrame(probs, columns=[f"p_{name}" for name in class_names])
    return pd.concat([pd.DataFrame(columns), classes], axis=1)


# --------------------------------------------------------------------------- PCA of the states

def fit_pca(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(mean [D], components [k, D], explained variance ratio [k]) of points [n, D].

    Components beyond the data's rank are zero, so a 1-step trace still projects.
    """
    points = points.double()
    mean = points.mean(0)
    _, s, vh = torch.linalg.svd(points - mean, full_matrices=False)
    comps = torch.zeros(k, points.shape[1], dtype=points.dtype)
    comps[:min(k, len(vh))] = vh[:k]
    var = s.pow(2)
    ratio = np.zeros(k)
    if var.sum() > 0:
        r = (var / var.sum()).numpy()[:k]
        ratio[:len(r)] = r
    return mean, comps, ratio


def z_norm_grid(z: torch.Tensor, grid: int) -> np.ndarray:
    """[S, g, g]: the norm of each patch's latent at each step (z for one image: [S, T, D])."""
    return z.norm(dim=-1).reshape(len(z), grid, grid).numpy()


def z_change_grid(z: torch.Tensor, z_init: torch.Tensor, grid: int) -> np.ndarray:
    """[S, g, g]: how far each patch's latent moved in each step, ||z_s - z_{s-1}|| (z_0 = z_init)."""
    prev = torch.cat([z_init[None], z[:-1]])
    return (z - prev).norm(dim=-1).reshape(len(z), grid, grid).numpy()


def z_pca_rgb(z: torch.Tensor, grid: int) -> np.ndarray:
    """[S, g, g, 3] in [0, 1]: the top 3 principal components of z as colour.

    Fitted once over every patch of every step, and scaled by the range over all steps, so a
    colour means the same thing at every step.
    """
    steps, tokens, dim = z.shape
    flat = z.reshape(steps * tokens, dim).double()
    mean, comps, _ = fit_pca(flat, 3)
    proj = (flat - mean) @ comps.T
    lo, hi = proj.min(0).values, proj.max(0).values
    rgb = (proj - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return rgb.reshape(steps, grid, grid, 3).float().numpy()


def y_path(y: torch.Tensor, directions: torch.Tensor | None):
    """The answer token's path in 2-D: points [S, 2], arrows [C, 2] or None, explained ratio [2].

    The PCA is fitted on y after steps 1..S. The learned start y_0 is left out: the first step
    moves y much further than any later one, and fitting it would flatten the rest of the path.
    ``directions`` [C, D] are the head's class directions in y space; their projections are
    scaled so the longest arrow spans half the path's extent (only direction is meaningful).
    """
    points = y.double()
    mean, comps, ratio = fit_pca(points, 2)
    path = ((points - mean) @ comps.T).numpy()
    arrows = None
    if directions is not None:
        arrows = (directions.double() @ comps.T).numpy()
        longest = np.linalg.norm(arrows, axis=1).max()
        extent = np.abs(path).max() if np.abs(path).max() > 0 else 1.0
        if longest > 0:
            arrows = arrows / longest * 0.5 * extent
    return path, arrows, ratio


# --------------------------------------------------------------------------- attention

def answer_attention(maps: AttentionMaps, step: int, layer: int, head: int | None, b: int) -> np.ndarray:
    """[T]: where the answer token looks at ``step`` (1-based), one layer, one head or the mean."""
    w = maps.answer[step - 1, layer, b]                    # [H, T+1, T+1]
    w = w.mean(0) if head is None else w[head]
    return w[0, 1:].numpy()


def block_calls(maps: AttentionMaps) -> list[str]:
    n = maps.latent.shape[1]
    return [f"latent update {i + 1} of {n}: z <- f(x, y, z)" for i in range(n)] + ["answer update: y <- f(y, z)"]


def token_labels(maps: AttentionMaps, call: int) -> list[str]:
    """Names of the rows/columns of block call ``call`` (an index into ``block_calls``)."""
    tokens = maps.answer.shape[-1] - 1
    if call == maps.latent.shape[1]:
        return ["y"] + [f"z{t + 1}" for t in range(tokens)]
    if maps.combine == "concat":
        return ["y"] + [f"x{t + 1}" for t in range(tokens)] + [f"z{t + 1}" for t in range(tokens)]
    return ["y"] + [f"x{t + 1}+z{t + 1}" for t in range(tokens)]


def call_attention(maps: AttentionMaps, step: int, call: int, b: int, head: int | None) -> torch.Tensor:
    """[k, L, L]: every layer's attention in one block call of ``step``, one head or the mean."""
    if call == maps.latent.shape[1]:
        w = maps.answer[step - 1, :, b]
    else:
        w = maps.latent[step - 1, call, :, b]
    return w.mean(1) if head is None else w[:, head]


def rollout(layers: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) through the layers of one call: [L, L].

    Each layer's attention is averaged with the identity (the residual connection) and
    renormalized; the product says how much each output token draws on each input token.
    """
    eye = torch.eye(layers.shape[-1], dtype=torch.float64)
    result = eye
    for w in layers.double():
        a = 0.5 * w + 0.5 * eye
        result = (a / a.sum(-1, keepdim=True)) @ result
    return result


def step_rollout(maps: AttentionMaps, step: int, b: int, head: int | None) -> dict[str, np.ndarray | float]:
    """How much the answer at the end of ``step`` draws on each input of the step.

    Rolls attention out through every block call of the step (the n latent updates, then the
    answer update), tracking each token as a mixture of the step's inputs: the previous
    answer y, the image patches x_1..x_T and the previous latents z_1..z_T. With
    combine="add" a token x_t+z_t counts half for each. The shares sum to 1.
    """
    tokens = maps.answer.shape[-1] - 1
    sources = 1 + 2 * tokens
    src = torch.eye(sources, dtype=torch.float64)
    y_in, x_in, z = src[:1], src[1:1 + tokens], src[1 + tokens:]
    latent_calls = maps.latent.shape[1]
    for call in range(latent_calls):
        r = rollout(call_attention(maps, step, call, b, head))
        if maps.combine == "concat":
            z = r[1 + tokens:] @ torch.cat([y_in, x_in, z])
        else:
            z = r[1:] @ torch.cat([y_in, 0.5 * (x_in + z)])
    r = rollout(call_attention(maps, step, latent_calls, b, head))
    y_out = (r[:1] @ torch.cat([y_in, z]))[0].numpy()
    return {"y": float(y_out[0]), "x": y_out[1:1 + tokens], "z": y_out[1 + tokens:]}
