"""Attribution maps (captum) over the image: which pixels pushed the answer at a step.

Maps that are compared share one colour scale, drawn as one figure with one colour bar: the methods at one
step (each map divided by its own largest value, as the methods' units differ), and one method over the
steps (its own units, so a map that fades from step to step really fades).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from vitrm import ATTRIBUTION_METHODS as METHODS

from .. import glossary
from ..text import md, plotly
from . import figures

UNSIGNED = {"saliency"}        # |gradient|: a size without a direction


def row_steps(n: int, trained: int, most: int = 8) -> list[int]:
    """At most ``most`` steps spread over 1..``n`` for the row across steps, always with 1, ``n`` and the trained
    step count (evenly spread steps over 16 skipped 8: 1, 3, 5, 7, 10, ...)."""
    steps = {int(round(s)) for s in np.linspace(1, n, min(n, most))}
    if 1 <= trained <= n and trained not in steps:
        inner = sorted(steps - {1, n}) or sorted(steps)
        steps.discard(min(inner, key=lambda s: abs(s - trained)))      # the nearest gives way
        steps.add(trained)
    return sorted(steps)


def _largest(values: np.ndarray) -> float:
    return float(np.abs(values).max()) or 1.0


def methods_figure(pixels: np.ndarray, results: list, class_names) -> go.Figure:
    """The methods at one step, side by side. Their units differ (a gradient, a change of score), so each map
    is divided by its own largest |value|: one scale, -1 to 1, for all of them."""
    maps = [r.map / _largest(r.map) for r in results]
    titles = [f"{METHODS[r.method]} ({r.seconds:.2f} s)" for r in results]
    return figures.overlay_grid(pixels, maps, titles, zmin=-1.0, zmax=1.0,
                                colorbar_title="÷ each map's<br>largest |value|",
                                title=f"Evidence for {plotly(class_names[results[0].target])} at step "
                                      f"{results[0].step}, one colour scale for every method")


def row_figure(pixels: np.ndarray, row: list, class_names) -> go.Figure:
    """One method at several steps, on one scale in the method's own units: symmetric around zero for signed
    methods, from zero for Saliency."""
    method = row[0].method
    bound = max(_largest(r.map) for r in row)
    signed = method not in UNSIGNED
    return figures.overlay_grid(
        pixels, [r.map for r in row], [f"step {r.step}" for r in row],
        zmin=-bound if signed else 0.0, zmax=bound, colorscale=figures.SIGNED_OVER_PHOTO if signed
        else figures.OVER_PHOTO, map_height=260,
        colorbar_title=f"one scale,<br>all steps:<br>{'±' if signed else '0 to '}{bound:.2g}",
        title=f"{METHODS[method]} for {plotly(class_names[row[0].target])} at each step")


def draw_attributions(results: list, pixels: np.ndarray, class_names, step: int) -> None:
    glossary.markdown(f"Attributions for **{md(class_names[results[0].target])}** at step {step}: " +
                      ", ".join(f"**{METHODS[r.method]}** {r.seconds:.2f} s" for r in results))
    figures.show(methods_figure(pixels, results, class_names))
    glossary.caption(f"Red pixels pushed the model towards the class named above at step {step}, blue pixels away "
                     "from it; where the photo shows through, a pixel mattered little (Saliency has no sign: it shows "
                     "only how sensitive the answer is to each pixel, in red). Each map is scaled to its own strongest "
                     "pixel, so the methods share one colour scale. Methods that agree point at real evidence; a map "
                     "that lights up background is worth a second look.", *(METHODS[r.method] for r in results))


def draw_attribution_row(row: list, pixels: np.ndarray, class_names) -> None:
    if not row:
        return
    figures.show(row_figure(pixels, row, class_names))
    total = sum(r.seconds for r in row)
    glossary.caption(f"{METHODS[row[0].method]} for **{md(class_names[row[0].target])}** at each step ({total:.2f} s "
                     "in all), every map on the one colour scale in the colour bar, so colours compare between steps. "
                     "If the evidence sharpens as recursion goes on, later maps concentrate on the object.")
