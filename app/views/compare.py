"""Compare with…: two checkpoints' answers on the same test images, from their predictions.csv.

The figures come from ``vitrm.compare_predictions`` (one owner of the rule); this module draws
them: the count of each kind of disagreement, a browsable list of the images where the two
disagree (thumbnails, a filter by kind and class, pages; selecting a row opens the image in the
scrubber, like the error table), the per-class difference as zero-centred bars, the confusion
difference as a zero-centred heatmap, and the two models' table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import vitrm

from .. import error_list, glossary, session, text
from . import error_table, figures, list_nav

SECTION = "Compare with…"
ANY_DISAGREEMENT = "any"
SORTS = {"image": "dataset order", "conf_a": "A's confidence", "conf_b": "B's confidence"}


def state_key(a_key: str, name: str) -> str:
    return f"compare::{a_key}::{name}"


def kind_label(kind: str) -> str:
    return vitrm.COMPARISON_KINDS[kind]


# --------------------------------------------------------------------------- figures

def per_class_figure(per_class: pd.DataFrame, a_name: str, b_name: str) -> go.Figure:
    """B's accuracy minus A's per class: bars right of zero where B does better, on an axis centred on zero."""
    diff = per_class["difference"].to_numpy(dtype=float)
    reach = max(float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0, 0.01) * 1.15
    names = text.plotly_all(per_class.index)
    colours = ["#2166ac" if d > 0 else "#b2182b" if d < 0 else "#999999" for d in np.nan_to_num(diff)]
    fig = go.Figure(go.Bar(
        x=diff, y=names, orientation="h", marker_color=colours,
        customdata=np.stack([per_class["top1_a"], per_class["top1_b"], per_class["images"]], axis=1),
        hovertemplate="%{y}: B - A %{x:+.1%} (A %{customdata[0]:.1%}, B %{customdata[1]:.1%}; "
                      "%{customdata[2]} images)<extra></extra>"))
    fig.add_vline(x=0, line_color="#444", line_width=1)
    fig.update_xaxes(title=f"top-1 of B ({text.plotly(b_name)}) minus A ({text.plotly(a_name)})",
                     tickformat="+.0%", range=[-reach, reach], zeroline=True)
    fig.update_yaxes(autorange="reversed")     # class 0 on top, as in the confusion matrix
    return figures.compact(fig, 380, "Per-class accuracy: B minus A")


def confusion_difference_figure(difference: np.ndarray, class_names) -> go.Figure:
    """B's confusion counts minus A's, on a colour scale centred on zero, each cell's difference written in it."""
    m = np.asarray(difference)
    reach = max(int(np.abs(m).max()), 1)
    names = text.plotly_all(class_names)
    cells = [[f"{v:+,}" if v else "" for v in row] for row in m.tolist()]
    fig = go.Figure(go.Heatmap(z=m, x=names, y=names, colorscale="RdBu", zmid=0, zmin=-reach, zmax=reach,
                               text=cells, texttemplate="%{text}", textfont=dict(size=14),
                               colorbar=dict(thickness=10, title="B - A"),
                               hovertemplate="true %{y}, answered %{x}: B - A = %{z:+} images<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="answer")
    return figures.compact(fig, 440, "Confusion matrix: B minus A (images)")


# --------------------------------------------------------------------------- the list of disagreements

def listed(result: vitrm.Comparison, kind: str, classes: list[str], sort: str, descending: bool) -> pd.DataFrame:
    """The disagreements of ``kind`` (or any) among the true ``classes`` (or all), in the chosen order."""
    rows = result.disagreements if kind == ANY_DISAGREEMENT else result.of_kind(kind)
    if classes:
        rows = rows[rows["label_name"].isin(classes)]
    key = "index" if sort == "image" else sort
    return rows.sort_values(key, ascending=not descending, kind="stable", na_position="last")


def open_row(model, chosen: pd.Series, all_rows: pd.DataFrame, root: Path, step: int, title: str) -> bool:
    """Open ``chosen`` in the scrubber with ``model`` at ``step``, the whole list kept for previous/next.
    False (nothing opened) when the row's file lies outside the data folder."""
    def inside(p) -> str | None:
        try:
            return str(vitrm.paths.confine(root, p))
        except vitrm.paths.UnsafePathError:
            return None

    items = [(inside(p), str(label)) for p, label in zip(all_rows["path"], all_rows["label_name"])]
    items = [(file, label) for file, label in items if file]
    chosen_item = (inside(chosen["path"]), str(chosen["label_name"]))
    if chosen_item not in items:
        return False
    list_nav.remember(title, items, model, step)
    list_nav.open_item(items.index(chosen_item), switch=True)
    return True


def _load_b_for_opening(b_key: str, radio_key: str) -> None:
    """on_change of "Open with": B must be loaded in the sidebar for the Explore page to show it."""
    selected = st.session_state.get(session.SELECTED, [])
    if st.session_state.get(radio_key) == "B" and b_key not in selected:
        st.session_state[session.SELECTED] = list(selected) + [b_key]


def draw_list(result: vitrm.Comparison, a, b, root: Path | None) -> None:
    a_key = a.key
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    kinds = [ANY_DISAGREEMENT, *vitrm.DISAGREEMENTS]
    counts = result.counts
    kind = c1.selectbox("Disagreement", kinds, key=state_key(a_key, "kind"),
                        format_func=lambda k: (f"any ({len(result.disagreements):,})" if k == ANY_DISAGREEMENT
                                               else f"{kind_label(k)} ({counts[k]:,})"))
    classes = c2.multiselect("True class", list(result.class_names), key=state_key(a_key, "true"),
                             placeholder="every class", format_func=text.plain)
    sort = c3.selectbox("Sort by", list(SORTS), key=state_key(a_key, "sort"), format_func=SORTS.get,
                        help=glossary.help_for(*SORTS.values()))
    st.session_state.setdefault(state_key(a_key, "descending"), False)
    descending = c4.toggle("Largest first", key=state_key(a_key, "descending"))
    rows = listed(result, kind, classes, sort, descending)
    c1, c2, c3 = st.columns([2, 2, 4])
    size = c1.selectbox("Rows per page", error_list.PAGE_SIZES, key=state_key(a_key, "size"))
    total = error_list.pages(len(rows), size)
    page_key = state_key(a_key, "page")
    st.session_state[page_key] = min(max(1, int(st.session_state.get(page_key, 1))), total)
    number = int(c2.number_input(f"Page (of {total:,})", min_value=1, max_value=total, key=page_key))
    radio_key = state_key(a_key, "open_with")
    if st.session_state.get(radio_key) == "B" and b.key not in {m.key for m in session.models()}:
        st.session_state[radio_key] = "A"      # a B chosen since, and not loaded: the scrubber could not show it
    with_b = c3.radio("Open a selected image with", ["A", "B"], horizontal=True, key=radio_key,
                      format_func=lambda s: text.md(f"{s}: {(a if s == 'A' else b).name}"),
                      on_change=_load_b_for_opening, args=(b.key, radio_key),
                      help="B is added to the checkpoints loaded in the sidebar if it is not there yet.")
    shown_rows = error_list.page(rows, number, size)
    title = (kind_label(kind) if kind != ANY_DISAGREEMENT else "A and B disagree") + f" ({a.name} vs {b.name})" + (
        "; true " + ", ".join(classes) if classes else "")
    st.caption(text.md(f"{len(rows):,} images ({title}); rows {(number - 1) * size + min(1, len(shown_rows))}-"
                       f"{(number - 1) * size + len(shown_rows)}. Select a row to open the image in the scrubber; "
                       "previous and next there follow this list.", limit=None))
    table = pd.DataFrame({
        "image": [error_table.thumbnail_uri(str(root), p) if root is not None else None for p in shown_rows["path"]],
        "true class": shown_rows["label_name"].map(text.plain).to_numpy(),
        f"A at step {result.step_a}": shown_rows["answer_a"].map(text.plain).to_numpy(),
        "A's confidence": shown_rows["conf_a"].to_numpy(dtype=float),
        f"B at step {result.step_b}": shown_rows["answer_b"].map(text.plain).to_numpy(),
        "B's confidence": shown_rows["conf_b"].to_numpy(dtype=float),
        "kind": shown_rows["kind"].map(kind_label).to_numpy(),
    })
    model, step = (b, result.step_b) if with_b == "B" else (a, result.step_a)
    table_key = f"compare_rows::{a_key}::{b.key}::{kind}::{number}"    # not persisted: a selection cannot be set
    confidence = {c: st.column_config.ProgressColumn(c, format="percent", min_value=0.0, max_value=1.0)
                  for c in ("A's confidence", "B's confidence")}
    event = st.dataframe(table, hide_index=True, width="stretch", key=table_key, selection_mode="single-row",
                         on_select="rerun" if root else "ignore",
                         column_config={"image": st.column_config.ImageColumn("image", width="small"), **confidence})
    picked = event.selection.rows if root is not None else []
    if picked and open_row(model, shown_rows.iloc[picked[0]], rows, root, step, title):
        st.rerun()          # the page's top sees goto_explore and switches to the scrubber
    if root is None:
        st.warning("The images were not found (the data directory named in metrics.json is absent), so rows "
                   "cannot be opened.")


# --------------------------------------------------------------------------- the section

def notes(metrics_a: dict, metrics_b: dict, step_a: int, step_b: int, card_a: dict, card_b: dict,
          computed: list[str]) -> list[str]:
    """What makes the two less than like for like, each said once."""
    out = []
    trained_a, trained_b = card_a["trained_steps"], card_b["trained_steps"]
    off_trained = [f"{name} at step {step}, though trained with N={trained}" for name, step, trained in
                   (("A", step_a, trained_a), ("B", step_b, trained_b)) if step != trained]
    if off_trained:
        out.append("Not at the trained step count: " + "; ".join(off_trained) + ".")
    elif step_a != step_b:
        out.append(f"Each is read at its own trained step count: A at step {step_a}, B at step {step_b}"
                   + (" (a single pass: it does not recurse)." if step_b == 1 else "."))
    for key in ("data", "split", "data_note"):
        if metrics_a.get(key) != metrics_b.get(key):
            out.append(f"The two were evaluated on different {key.replace('_', ' ')}: "
                       f"A {metrics_a.get(key) or 'unrecorded'}, B {metrics_b.get(key) or 'unrecorded'}.")
    epochs_a, epochs_b = card_a.get("epochs_logged"), card_b.get("epochs_logged")
    if epochs_a != epochs_b:
        out.append(f"Different training budgets: A {epochs_a if epochs_a is not None else 'an unlogged number of'} "
                   f"epochs, B {epochs_b if epochs_b is not None else 'an unlogged number of'}; a difference "
                   "below is the budget's as much as the architecture's.")
    out += [f"{name}'s figures were computed in this session on a sample." for name in computed]
    return out


def draw_counts(result: vitrm.Comparison) -> None:
    counts, (top1_a, top1_b) = result.counts, result.top1
    cols = st.columns(4)
    for col, kind in zip(cols, vitrm.DISAGREEMENTS):
        col.metric(kind_label(kind), f"{counts[kind]:,}")
    # B's top-1 as the value and the change from A as the delta: "85.19% → 84.96%" was cut short in a quarter row.
    cols[3].metric("Top-1 of B", f"{top1_b:.2%}", f"{100 * (top1_b - top1_a):+.2f} points vs A ({top1_a:.2%})",
                   help=glossary.tip("top-1"))
    glossary.caption(f"Of {len(result.images):,} images: {counts['both_right']:,} both right, "
                     f"{counts['both_wrong_same']:,} both wrong with the same answer. Top-1 of each is over "
                     "exactly these images, at the step shown.")


def draw_models(cards: list[dict]) -> None:
    from app import summaries
    table = summaries.comparison_table(cards)
    table = table.assign(**{"model": table["model"].map(text.plain),
                            "parameters": table["parameters"].map("{:,}".format),
                            "top-1 at trained N": table["top-1 at trained N"].map(
                                lambda x: "not evaluated" if x is None or pd.isna(x) else f"{100 * x:.2f}%")})
    st.table(table.fillna("not evaluated"), hide_index=True)
    glossary.caption("MFLOPs per image: one forward pass at the trained N, counted by torch (multiply-adds count "
                     "two). Training time: wall-clock time recorded in train_log.csv, summed over the runs the "
                     "weights come from (stages, and runs averaged together, which may have trained at the same "
                     "time), on the "
                     "machine each ran on; \"unknown\" where the log does not record it.", *table.columns)


def draw_comparison(result: vitrm.Comparison, a, b, root: Path | None, cards: list[dict], notes_: list[str]) -> None:
    st.markdown(text.md(f"A: {a.name} at step {result.step_a} · B: {b.name} at step {result.step_b}", limit=None))
    for note in notes_:
        st.info(text.md(note, limit=text.MAX_MESSAGE))
    draw_counts(result)
    draw_list(result, a, b, root)
    left, right = st.columns(2)
    with left:
        figures.show(per_class_figure(result.per_class, a.name, b.name))
        glossary.caption("Each bar is one class: B's accuracy minus A's. Right of zero (blue), B does better on "
                         "that class; left (red), A does. Hover for both accuracies.", "top-1")
    with right:
        figures.show(confusion_difference_figure(result.confusion_difference, result.class_names))
        st.caption("B's confusion counts minus A's (rows: true class; columns: answer). On the diagonal, blue "
                   "means B gets more images of that class right; off it, blue means B makes that mistake more "
                   "often, red less often. Each row sums to zero (the same images in both), so a row shows where "
                   "B's gains on a class come from and where its losses go.")
    draw_models(cards)
