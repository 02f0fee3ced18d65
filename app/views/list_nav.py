"""Previous / next through the list a dataset image was opened from (the analysis table or a gallery).

The list lives in the session: its title, its (path, true class) items in the order shown, the
model and the step it was opened with. On the Explore page, while the image shown is one of the
list's, two buttons step through it; the step slider stays where the user put it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from .. import session, text

LIST = "image_list"


def remember(title: str, items: list[tuple[str, str]], model: session.LoadedModel, step: int) -> None:
    st.session_state[LIST] = {"title": title, "items": items, "model": model, "step": step}


def open_item(position: int, switch: bool) -> None:
    """Show the list's item ``position``; with ``switch``, also bring its model into focus at its step
    and go to the Explore page (from the analysis page)."""
    saved = st.session_state[LIST]
    path, label = saved["items"][position]
    if switch:
        session.open_dataset_image(path, label, saved["model"], saved["step"])
    else:
        st.session_state["dataset_image"] = (path, label)
        st.session_state["source"] = "Dataset image"


def position() -> int | None:
    """Where the image on screen sits in the remembered list, if it comes from it."""
    saved, shown = st.session_state.get(LIST), st.session_state.get("dataset_image")
    if not saved or not shown or st.session_state.get("source") != "Dataset image":
        return None
    try:
        return [p for p, _ in saved["items"]].index(shown[0])
    except ValueError:
        return None


def draw() -> None:
    """The previous / next row, when the image shown comes from a remembered list."""
    at = position()
    if at is None:
        return
    saved = st.session_state[LIST]
    total = len(saved["items"])
    c1, c2, c3 = st.columns([1, 4, 1])
    c1.button("◀ Previous", key="list_previous", disabled=at == 0, on_click=open_item, args=(at - 1, False),
              width="stretch")
    c2.caption(text.md(f"Image {at + 1:,} of {total:,} in the list: {saved['title']} "
                       f"({Path(saved['items'][at][0]).name}).", limit=None))
    c3.button("Next ▶", key="list_next", disabled=at == total - 1, on_click=open_item, args=(at + 1, False),
              width="stretch")
