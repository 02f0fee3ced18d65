"""Image galleries from the per-image table; a button under each opens it in the scrubber."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st
from PIL import Image

from ..text import md

PER_ROW = 6


def draw_gallery(rows: pd.DataFrame, n: int, class_names, load: Callable[[str], Image.Image | str],
                 on_open: Callable[[str, str], None], key: str, limit: int = 12) -> None:
    """``rows`` from predictions.csv; ``load(path)`` gives the image, or a sentence saying why there is none."""
    if rows.empty:
        st.info("No images in this group.")
        return
    st.caption(f"{len(rows):,} images; the first {min(limit, len(rows))} are shown. Under each: the true class and "
               "the answers at step 1 and at N. Press Open to follow one through the recursion on the Explore page "
               f"(it opens at step {n}, with this model in focus).")
    shown = rows.head(limit)
    for start in range(0, len(shown), PER_ROW):
        cols = st.columns(PER_ROW)
        for col, (_, row) in zip(cols, shown.iloc[start:start + PER_ROW].iterrows()):
            with col:
                image = load(str(row["path"])) if isinstance(row["path"], str) else "image file not found"
                pred_1, pred_n = md(class_names[int(row["pred_1"])]), md(class_names[int(row[f"pred_{n}"])])
                text = f"true {md(row['label_name'])} · step 1: {pred_1} · step {n}: {pred_n}"
                if isinstance(image, str):
                    st.caption(f"\\#{row['index']}: {image}. {text}")
                    continue
                st.image(image, caption=text, width="stretch")
                st.button("Open in scrubber", key=f"{key}::{row['index']}", on_click=on_open,
                          args=(str(row["path"]), str(row["label_name"])))
