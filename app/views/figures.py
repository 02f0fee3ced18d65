"""Small plotly building blocks shared by the views."""

from __future__ import annotations

import functools

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from plotly.subplots import make_subplots

MIN_FONT = 14
CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 3}}


MAP = "map"      # layout.meta of a small map over an image: drawn without a toolbar covering it


def show(fig: go.Figure | SpecFigure, key: str | None = None) -> None:
    """Draw a figure full-width, with plotly's own toolbar (PNG download included), except over maps."""
    config = CONFIG | {"displayModeBar": False} if _meta(fig) == MAP else CONFIG
    st.plotly_chart(chart_input(fig), width="stretch", config=config, key=key)


class SpecFigure:
    """A chart written as a plain plotly dict (``from_spec``): sent to the browser as it is (``chart_input``), and
    built into a go.Figure only when something asks for one (``figure``; any other go.Figure attribute gets there
    too). Building a go.Figure validates every property: for the scrubber's four charts, about ten times the rest
    of what st.plotly_chart does with them."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.built: go.Figure | None = None

    @property
    def figure(self) -> go.Figure:
        if self.built is None:
            self.built = go.Figure(self.spec)
        return self.built

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("spec", "figure", "built"):     # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.figure, name)


class AsWritten(go.Figure):
    """A chart written as a dict, for st.plotly_chart: it reads a figure through its public ``to_dict``, which here
    returns the dict itself, with the template plotly puts in every figure (tests/test_app.py: the same JSON)."""

    def __init__(self, spec: dict) -> None:
        super().__init__(layout={"template": {}})   # empty, and no template applied: nothing of the spec validated
        template = _default_template()
        layout = spec.get("layout", {})
        self._as_written = {"data": spec.get("data", []),
                            "layout": layout if template is None else {"template": template, **layout}}

    def to_dict(self) -> dict:
        return self._as_written


@functools.cache
def _default_template() -> dict | None:
    """The template plotly puts in every figure's layout (its default), as JSON; read once."""
    import plotly.io as pio

    name = pio.templates.default
    return None if name is None else (name if isinstance(name, dict) else pio.templates[name].to_plotly_json())


def chart_input(fig: go.Figure | SpecFigure) -> go.Figure:
    """What ``show`` hands st.plotly_chart: a chart written as a dict as it is (``AsWritten``), unless something
    built and changed its go.Figure."""
    if isinstance(fig, SpecFigure):
        return AsWritten(fig.spec) if fig.built is None else fig.built
    return fig


def _meta(fig: go.Figure | SpecFigure):
    if isinstance(fig, SpecFigure) and fig.built is None:
        return fig.spec.get("layout", {}).get("meta")
    return fig.layout.meta


TOOLBAR_ROW = 30        # px: plotly's toolbar (top right, 26 px high) has this row above a chart's title


def compact_layout(height: int, title: str | None = None, **layout) -> dict:
    """``compact``'s layout as a plain dict, with ``layout`` added (for a figure written as a dict)."""
    # 14 px at the least, everywhere: read from the back of a classroom on a projector. Streamlit's chart theme
    # sets 12 px on ticks, axis titles, legends and colour bars, over the layout's font, so each is set here.
    readable = {"size": MIN_FONT}
    # A chart with plotly's toolbar keeps its title under it: on the same row, the toolbar covered a long title
    # (tests/test_browser_classroom.py). A map has no toolbar (``show``), so no row for one.
    toolbar = TOOLBAR_ROW if title and layout.get("meta") != MAP else 0
    compact = {"height": height + toolbar, "margin": {"l": 10, "r": 10, "t": (44 if title else 10) + toolbar, "b": 10},
               "font": readable, "hoverlabel": {"font": readable},
               "legend": {**layout.get("legend", {}), "font": readable, "title": {"font": readable}}}
    if title:
        compact["title"] = {"text": title, "font": {"size": MIN_FONT + 2}, "y": 1, "yref": "container",
                            "yanchor": "top", "pad": {"t": toolbar + 8}}
    for axis in ("xaxis", "yaxis"):
        given = dict(layout.get(axis, {}))
        axis_title = given.get("title", {})
        axis_title = {"text": axis_title} if isinstance(axis_title, str) else dict(axis_title)
        compact[axis] = given | {"tickfont": readable, "title": axis_title | {"font": readable}}
    return layout | compact


def compact(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    readable = dict(size=MIN_FONT)
    fig.update_layout({k: v for k, v in compact_layout(height, title, meta=fig.layout.meta).items()
                       if k not in ("xaxis", "yaxis")})
    fig.update_xaxes(tickfont=readable, title_font=readable)     # every axis of every subplot
    fig.update_yaxes(tickfont=readable, title_font=readable)
    fig.update_traces(colorbar=dict(tickfont=readable, title_font=readable), selector=dict(type="heatmap"))
    # Only colour axes the figure has: update_coloraxes would add an empty one to every figure.
    for name in [k for k in fig.layout.to_plotly_json() if k.startswith("coloraxis")]:
        fig.layout[name].colorbar.update(tickfont=readable, title_font=readable)
    return fig


# Colour scales for maps over a photo: the low end (or, when signed, the middle) is transparent, so the
# photo shows through wherever the map has nothing to say; only strong values cover it.
OVER_PHOTO = [[0.0, "rgba(255,255,178,0)"], [0.3, "rgba(254,204,92,0.45)"], [0.65, "rgba(253,141,60,0.75)"],
              [1.0, "rgba(189,0,38,0.9)"]]
SIGNED_OVER_PHOTO = [[0.0, "rgba(5,48,97,0.9)"], [0.3, "rgba(67,147,195,0.55)"], [0.5, "rgba(247,247,247,0)"],
                     [0.7, "rgba(214,96,77,0.55)"], [1.0, "rgba(103,0,31,0.9)"]]


def upsample(values: np.ndarray, size: int) -> np.ndarray:
    """A [g, g] grid resized to [size, size] by bilinear interpolation (cell centres keep their values)."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[0] == size:
        return values
    return np.asarray(Image.fromarray(values, mode="F").resize((size, size), Image.Resampling.BILINEAR))


def _map_layer(pixels: np.ndarray, values: np.ndarray, **heatmap) -> list[go.BaseTraceType]:
    """The photo, and ``values`` upsampled to its pixels and drawn over it."""
    return [go.Image(z=pixels, hoverinfo="skip"),
            go.Heatmap(z=upsample(values, pixels.shape[0]), hovertemplate="%{z:.3g}<extra></extra>", **heatmap)]


def overlay(pixels: np.ndarray, values: np.ndarray, *, title: str, colorscale=OVER_PHOTO,
            zmin: float | None = None, zmax: float | None = None, zmid: float | None = None,
            colorbar_title: str | None = None, colorbar_format: str | None = None, height: int = 300) -> go.Figure:
    """``values`` (any square grid: patches or pixels), upsampled and blended over the image."""
    fig = go.Figure(_map_layer(pixels, values, colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid,
                               colorbar=dict(thickness=10, title=colorbar_title, tickformat=colorbar_format)))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(meta=MAP)
    return compact(fig, height, title)


def overlay_grid(pixels: np.ndarray, maps: list[np.ndarray], titles: list[str], *, zmin: float, zmax: float,
                 colorbar_title: str, colorscale=SIGNED_OVER_PHOTO, columns: int = 4, map_height: int = 300,
                 title: str | None = None) -> go.Figure:
    """Several maps over the same image in one figure, on one colour scale (one colour axis, one colour bar):
    equal colours mean equal values in every map."""
    columns = max(1, min(columns, len(maps)))
    rows = -(-len(maps) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.08 if rows > 1 else 0.0)
    for i, values in enumerate(maps):
        for trace in _map_layer(pixels, values, coloraxis="coloraxis"):
            fig.add_trace(trace, row=i // columns + 1, col=i % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for i in range(len(maps)):       # keep every map square: its y axis follows its own x axis
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_layout(meta=MAP, coloraxis=dict(colorscale=colorscale, cmin=zmin, cmax=zmax,
                                               colorbar=dict(thickness=12, title=colorbar_title)))
    fig.update_annotations(font=dict(size=MIN_FONT))
    return compact(fig, rows * map_height + (44 if title else 30), title)


def upscale(grid: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a [g, g, ...] grid to [size, size, ...]."""
    factor = max(1, size // grid.shape[0])
    return grid.repeat(factor, 0).repeat(factor, 1)


def _marker(step: int) -> dict:
    return dict(type="line", x0=step, x1=step, xref="x", y0=0, y1=1, yref="paper",
                line=dict(color="black", dash="dot", width=1))


def step_marker(fig: go.Figure, step: int) -> go.Figure:
    """A dotted vertical line at the selected step (a plain shape: add_vline is slow to build)."""
    fig.add_shape(**_marker(step))
    return fig


def from_spec(validated: dict, step: int | None = None) -> SpecFigure:
    """The figure written as the dict ``validated``, with a step marker when ``step`` is given.

    A dict that the tests have checked against the validated build (tests/test_app.py) is wrapped as it is, and
    the marker is ``step_marker``'s own shape: no go.Figure is built here, only by Streamlit as it sends it.
    """
    layout = dict(validated.get("layout", {}))
    if step is not None:
        layout["shapes"] = [*layout.get("shapes", ()), _marker(step)]
    # Arrays as lists: plotly re-encodes every numpy array (base64, through narwhals) each time the figure is
    # turned into JSON, half of st.plotly_chart's time for these small charts; a list of a few dozen numbers
    # is sent as it is.
    data = [{k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in trace.items()}
            for trace in validated.get("data", [])]
    return SpecFigure({"data": data, "layout": layout})


def level_line_layout(y: float, text: str) -> dict:
    """``level_line``'s shape and label as layout entries (for a figure written as a dict)."""
    return {"shapes": [{"type": "line", "x0": 0, "x1": 1, "xref": "paper", "y0": y, "y1": y, "yref": "y",
                        "line": {"color": "grey", "dash": "dash", "width": 1}}],
            "annotations": [{"x": 0, "xref": "paper", "y": y, "yref": "y", "text": text, "showarrow": False,
                             "xanchor": "left", "yanchor": "bottom", "font": {"size": MIN_FONT, "color": "grey"}}]}


def level_line(fig: go.Figure, y: float, text: str) -> go.Figure:
    """A dashed horizontal reference line across the plot, labelled at its left end."""
    entries = level_line_layout(y, text)
    fig.add_shape(**entries["shapes"][0])
    fig.add_annotation(**entries["annotations"][0])
    return fig
