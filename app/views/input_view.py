"""The input: the original picture beside the small image the model actually sees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from ..text import md

DISPLAY = 144          # with the controls above, the answer below still fits a 1366x768 screen



def draw_input_pair(name: str, thumbnail: Image.Image, original_size: tuple[int, int], pixels: np.ndarray,
                    label: str | None):
    """The two images side by side, the true class beside them; returns that third column, for notes on the image
    (one row, not three: the answer below stays on a 1366x768 screen)."""
    left, right, notes = st.columns([1, 1, 2])
    w, h = original_size
    left.image(thumbnail, caption=f"{md(name)}: original, {w}x{h} pixels", width=DISPLAY, output_format="JPEG")
    size = pixels.shape[0]
    # Nearest-neighbour enlargement, so every pixel the model sees stays a visible square.
    big = Image.fromarray(pixels).resize((DISPLAY, DISPLAY), Image.Resampling.NEAREST)
    right.image(big, caption=f"what the model sees: {size}x{size} (shorter side resized, centre cropped)",
                width=DISPLAY)
    if label:
        notes.caption(f"True class: **{md(label)}**")
    return notes

def draw_upload_summary(rows: list[dict]) -> None:
    """One row per uploaded file: its prediction, or the library's message saying why it was refused.

    A static table: it costs the browser far less than an interactive grid.
    """
    st.table(pd.DataFrame(rows), hide_index=True)
    st.caption("Every upload is checked on its own: a file that is not a usable image gets a message and the "
               "others are still classified.")
