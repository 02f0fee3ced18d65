"""Every evaluated test image as a table: filter, sort, page, and open a row in the scrubber.

The rows, filters and order come from ``app.error_list``; this module draws the widgets and the
table (Streamlit's own dataframe, with an image column and single-row selection). Selecting a row
opens that image on the Explore page with the list it came from, so the scrubber can step to the
previous or next image of the same list (``app.views.list_nav``). A click on a confusion-matrix cell
(``clickable_confusion``) sets the filters to that cell's images.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import vitrm

from .. import error_list, glossary, text
from . import analysis, list_nav

SECTION = "Browse images"      # the Dataset analysis section that shows the table


def _key(model_key: str, name: str) -> str:
    return f"errors::{model_key}::{name}"


def filters_from_state(model_key: str) -> error_list.Filters:
    get = st.session_state.get
    return error_list.Filters(true=list(get(_key(model_key, "true"), [])),
                              predicted=list(get(_key(model_key, "predicted"), [])),
                              correctness=get(_key(model_key, "correctness"), error_list.ANY),
                              recursion=get(_key(model_key, "recursion"), error_list.ANY),
                              confidence=tuple(get(_key(model_key, "confidence"), (0.0, 1.0))),
                              images=get(_key(model_key, "images")))


def set_filters(model_key: str, filters: error_list.Filters) -> None:
    """Write filters into the widgets' state (before they are drawn) and go back to page 1."""
    for name in ("true", "predicted", "correctness", "recursion", "confidence", "images"):
        st.session_state[_key(model_key, name)] = getattr(filters, name)
    st.session_state[_key(model_key, "page")] = 1


@st.cache_data(max_entries=4096, show_spinner=False)
def thumbnail_uri(root: str, relative: str) -> str | None:
    """The image file as a data URL for the table's image column; None if missing or outside ``root``."""
    try:
        path = vitrm.paths.confine(root, relative)
    except vitrm.paths.UnsafePathError:
        return None
    if not path.is_file() or path.stat().st_size > 512 * 1024:
        return None
    mime = {".png": "image/png", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _filter_widgets(model_key: str, class_names, step: int, n: int) -> None:
    c1, c2, c3, c4 = st.columns([3, 3, 2, 3])
    names = list(class_names)
    c1.multiselect("True class", names, key=_key(model_key, "true"), placeholder="every class",
                   format_func=text.plain)
    c2.multiselect(f"Answer at step {step}", names, key=_key(model_key, "predicted"), placeholder="every class",
                   format_func=text.plain)
    c3.selectbox(f"At step {step}", error_list.CORRECTNESS, key=_key(model_key, "correctness"),
                 format_func=lambda v: {"any": "right or wrong", "right": "right", "wrong": "wrong"}[v])
    c4.selectbox(f"Recursion (step 1 vs N={n})", list(error_list.RECURSION), key=_key(model_key, "recursion"),
                 format_func=error_list.RECURSION.get)
    st.session_state.setdefault(_key(model_key, "confidence"), (0.0, 1.0))
    st.slider(f"Confidence of the answer at step {step}", 0.0, 1.0, step=0.01, key=_key(model_key, "confidence"),
              help=glossary.tip("confidence"))


def _order_widgets(model_key: str, rows: int) -> tuple[str, bool, int, int]:
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    column = c1.selectbox("Sort by", error_list.SORTABLE, key=_key(model_key, "sort"),
                          format_func=lambda c: "dataset order" if c == "image" else c,
                          help=glossary.help_for(*error_list.SORTABLE))
    st.session_state.setdefault(_key(model_key, "descending"), True)
    descending = c2.toggle("Largest first", key=_key(model_key, "descending"))
    size = c3.selectbox("Rows per page", error_list.PAGE_SIZES, key=_key(model_key, "size"))
    total = error_list.pages(rows, size)
    page_key = _key(model_key, "page")
    st.session_state[page_key] = min(max(1, int(st.session_state.get(page_key, 1))), total)
    number = c4.number_input(f"Page (of {total:,})", min_value=1, max_value=total, key=page_key)
    return column, descending, size, int(number)


def _open_selected(model, page_rows: pd.DataFrame, listed: pd.DataFrame, root: Path, step: int, title: str,
                   table_key: str) -> None:
    """on_select callback: open the selected row in the scrubber, with the whole list for previous/next."""
    selection = st.session_state.get(table_key)
    rows = selection.selection.rows if selection is not None else []
    if not rows:
        return
    chosen = page_rows.iloc[rows[0]]
    def inside(p) -> str | None:
        try:
            return str(vitrm.paths.confine(root, p))
        except vitrm.paths.UnsafePathError:
            return None
    items = [(inside(p), str(label)) for p, label in zip(listed["path"], listed["true class"])]
    items = [(file, label) for file, label in items if file]
    chosen_item = (inside(chosen["path"]), str(chosen["true class"]))
    if chosen_item not in items:
        return
    list_nav.remember(title, items, model, step)
    list_nav.open_item(items.index(chosen_item), switch=True)


def _summary(filters: error_list.Filters, step: int, n: int) -> str:
    parts = []
    if filters.true:
        parts.append("true " + ", ".join(filters.true))
    if filters.predicted:
        parts.append(f"answer at step {step} " + ", ".join(filters.predicted))
    if filters.correctness != error_list.ANY:
        parts.append(f"{filters.correctness} at step {step}")
    if filters.recursion != error_list.ANY:
        parts.append(error_list.RECURSION[filters.recursion])
    lo, hi = filters.confidence
    if (lo, hi) != (0.0, 1.0):
        parts.append(f"confidence {lo:.0%}-{hi:.0%}")
    if filters.images is not None:
        parts.append(f"the {len(filters.images):,} chosen on the map of answers")
    return "; ".join(parts) if parts else "every image"


def _forget_images(model_key: str) -> None:
    st.session_state[_key(model_key, "images")] = None


def _chosen_on_the_map(model_key: str, filters: error_list.Filters) -> None:
    """Say that a selection on the projector narrows the table, with a way back to every image."""
    if filters.images is None:
        return
    c1, c2 = st.columns([4, 1])
    c1.info(f"Only the {len(filters.images):,} images selected on the map of answers (Answers over steps) are "
            "listed, with the filters below.")
    # Not an "errors::" key: those are written back each run (app.session), which a button's state refuses.
    c2.button("Show every image", key=f"forget_images::{model_key}", on_click=_forget_images, args=(model_key,))


def _download(model, listed: pd.DataFrame, step: int) -> None:
    """The filtered, sorted rows, every page of them, as CSV (made only when the button is pressed)."""
    st.download_button(f"Download these {len(listed):,} rows (CSV)", lambda: error_list.to_csv(listed),
                       file_name=text.plain(f"{model.name}-images-step{step}.csv"), mime="text/csv",
                       key=f"download_rows::{model.key}", on_click="ignore", icon=":material/download:")


def draw_error_table(model, predictions: pd.DataFrame, class_names, step: int, n: int, root: Path | None) -> None:
    """``step`` is the analysis step slider's value; ``n`` the model's trained step count (its answer)."""
    table = error_list.build(predictions, class_names, step, n)
    _chosen_on_the_map(model.key, filters_from_state(model.key))
    _filter_widgets(model.key, class_names, step, n)
    filters = filters_from_state(model.key)
    listed = error_list.apply(table, filters)
    column, descending, size, number = _order_widgets(model.key, len(listed))
    listed = error_list.order(listed, column, descending)
    _download(model, listed, step)
    rows = error_list.page(listed, number, size)
    title = _summary(filters, step, n)
    st.caption(text.md(f"{len(listed):,} of {len(table):,} images ({title}); rows "
                       f"{(number - 1) * size + min(1, len(rows))}-{(number - 1) * size + len(rows)}. "
                       "Select a row to open the image in the scrubber; previous and next there follow this list.",
                       limit=None))
    shown = error_list.shown(rows).copy()
    shown.insert(0, "image", [thumbnail_uri(str(root), p) if root is not None else None for p in rows["path"]])
    for c in shown.columns:
        if shown[c].dtype == object and c != "image":
            shown[c] = shown[c].map(text.plain)
    table_key = f"error_rows::{model.key}::{step}::{number}"    # not persisted: a selection cannot be set
    st.dataframe(
        shown, hide_index=True, width="stretch", key=table_key, selection_mode="single-row",
        on_select=(lambda: _open_selected(model, rows, listed, root, step, title, table_key)) if root else "ignore",
        column_config={
            "image": st.column_config.ImageColumn("image", width="small"),
            "confidence": st.column_config.ProgressColumn(
                "confidence", format="percent", min_value=0.0, max_value=1.0,
                help=f"Probability of the answer at step {step}"),
            "change": st.column_config.NumberColumn(
                "change", format="%+.3f",
                help=f"Probability of the true class at N={n} minus at step 1: above 0, recursion moved "
                     "the model towards the right answer."),
            "halting step": st.column_config.NumberColumn(
                "halting step", format="%d", help="First step whose halting output reaches 0.5 (the last "
                                                  "evaluated step when none does)"),
        })
    if root is None:
        st.warning("The images were not found (the data directory named in metrics.json is absent), so rows "
                   "cannot be opened.")


# --------------------------------------------------------------------------- confusion matrix, clickable

def clickable_confusion_figure(confusion, class_names, n: int) -> go.Figure:
    """The confusion heatmap with one invisible square marker per cell on top, so that a click selects a cell.

    The markers carry the hover text too: plotly.js sends no click for a trace whose hoverinfo is "skip", and a
    heatmap cell cannot be selected, so the click layer must be the hoverable one.
    """
    fig = analysis.confusion_figure(confusion, class_names, n)
    m = np.array(confusion)
    shares = m / np.maximum(m.sum(1, keepdims=True), 1)
    names = text.plotly_all(class_names)
    cells = [(i, j) for i in range(len(names)) for j in range(len(names))]
    fig.data[0].hoverinfo = "skip"
    fig.add_trace(go.Scatter(x=[names[j] for _, j in cells], y=[names[i] for i, _ in cells], mode="markers+text",
                             text=[f"{m[i, j]:,}" if m[i, j] else "" for i, j in cells],
                             textfont=dict(size=14, color=[analysis.cell_text_colour(shares[i, j]) for i, j in cells]),
                             customdata=[[i, j, int(m[i, j]), float(shares[i, j])] for i, j in cells],
                             marker=dict(symbol="square", size=30, color="rgba(0,0,0,0)"),
                             hovertemplate="true %{y}, predicted %{x}: %{customdata[2]} (%{customdata[3]:.1%})"
                                           "<br>click to list these images<extra></extra>",
                             showlegend=False))
    fig.update_layout(clickmode="event+select", dragmode=False, hovermode="closest")
    return fig


def draw_clickable_confusion(model_key: str, confusion, class_names, n: int) -> None:
    chart_key = f"confusion::{model_key}::{n}"

    def clicked() -> None:
        points = st.session_state[chart_key].selection.points
        if not points or "customdata" not in points[0]:
            return
        true, predicted = points[0]["customdata"][:2]
        set_filters(model_key, error_list.Filters(true=[class_names[true]], predicted=[class_names[predicted]]))
        st.session_state["analysis_view"] = SECTION

    st.plotly_chart(clickable_confusion_figure(confusion, class_names, n), width="stretch", key=chart_key,
                    on_select=clicked, selection_mode="points",
                    config={"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]})
    st.caption("Rows are true classes, columns the model's answers; each cell shows its image count. "
               "Click a cell to list its images in the table (Browse images).")
