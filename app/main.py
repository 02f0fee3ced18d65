"""ViTRM Lab: watch a tiny recursive model think, step by step.

    streamlit run app/main.py          (or: make app)

Runs offline with no arguments on the checkpoints under ``checkpoints/``. Environment:

    VITRM_CHECKPOINTS        the checkpoints directory listed in the sidebar (default: ./checkpoints)
    VITRM_CHECKPOINT_ROOTS   more directories, separated by ':', under which a typed path may point

This is the script every visit runs, top to bottom on each interaction: the sidebar (the checkpoints) and the
navigation between the pages. The views draw, and app.cache does the model work.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.startup import starting

# A file, not an emoji or a ":material/...:" icon: a material favicon is fetched from fonts.gstatic.com (the app
# must work offline), and an emoji makes Streamlit import and compile its emoji table, 0.5 s of the first
# page's run on the 2-core machine. A Path, as a string is first tested for being an emoji.
st.set_page_config(page_title="ViTRM Lab", page_icon=Path(__file__).with_name("static") / "favicon.png",
                   layout="wide")

with starting():        # a fresh server's first run imports PyTorch here: app/startup.py shows something meanwhile
    import vitrm
    from app import checkpoints, session
    from app.text import MAX_MESSAGE, md, plain
    from vitrm import CheckpointError
session.keep_widget_state()


# The directory names a first visit loads, the first in focus: the model whose steps visibly refine, with the
# accurate flagship beside it, one click away in "Model in focus".
DEFAULT_CHECKPOINTS = ("vitrm-cifar10-refine", "vitrm-cifar10")


def _default_selection(found: list[Path]) -> list[str]:
    """Those of DEFAULT_CHECKPOINTS present, in that order; else the first recursive model, else the first one."""
    def recursive(p: Path) -> bool:
        try:
            return vitrm.read_config(p).recursive
        except CheckpointError:
            return False
    by_name = {p.name: p for p in found}
    preferred = [str(by_name[n]) for n in DEFAULT_CHECKPOINTS if n in by_name]
    if preferred or not found:
        return preferred
    # Configs read only when needed, and up to the first recursive one: every new visitor's first run comes here.
    return [str(next((p for p in found if recursive(p)), found[0]))]


def _add_typed_path() -> None:
    text = st.session_state.get("typed_path", "")
    try:
        path = checkpoints.resolve_typed_path(text)
        session.load(path)
    except CheckpointError as e:
        st.session_state["typed_error"] = str(e)
        return
    st.session_state["typed_error"] = None
    typed = st.session_state.setdefault(session.TYPED, [])
    if str(path) not in typed:
        typed.append(str(path))
    selected = st.session_state.setdefault(session.SELECTED, [])
    if str(path) not in selected:
        st.session_state[session.SELECTED] = selected + [str(path)]


def sidebar() -> list[session.LoadedModel]:
    st.title("ViTRM Lab")
    found = [str(p) for p in checkpoints.discover()]
    options = found + [p for p in st.session_state.get(session.TYPED, []) if p not in found]
    if session.SELECTED not in st.session_state:
        st.session_state[session.SELECTED] = _default_selection([Path(p) for p in found])
    st.session_state[session.SELECTED] = [p for p in st.session_state[session.SELECTED] if p in options]
    chosen = st.multiselect("Checkpoints (several to compare)", options, key=session.SELECTED,
                            format_func=lambda p: plain(Path(p).name),
                            help=f"Directories under {md(checkpoints.checkpoints_root(), None)} that hold "
                                 "model.safetensors "
                                 "and config.json.")
    st.text_input("…or a checkpoint directory", key="typed_path", on_change=_add_typed_path,
                  placeholder="checkpoints/my-run",
                  help="Only directories under these roots are allowed: "
                       + ", ".join(md(r, None) for r in checkpoints.allowed_roots())
                       + ". Add more with the VITRM_CHECKPOINT_ROOTS environment variable.")
    if st.session_state.get("typed_error"):
        st.error(md(st.session_state["typed_error"], MAX_MESSAGE))
    loaded, errors = session.load_all([Path(p) for p in chosen])
    for e in errors:
        st.error(md(e, MAX_MESSAGE))
    st.caption("Models load once and are shared by every visitor; your image and choices stay in your session.")
    return loaded


with st.sidebar:
    st.session_state["loaded_models"] = sidebar()

page = st.navigation([
    st.Page("screens/explore.py", title="Explore an image", icon=":material/search:", default=True),
    st.Page("screens/dataset.py", title="Dataset analysis", icon=":material/bar_chart:"),
    st.Page("screens/how_it_works.py", title="How ViTRM works", icon=":material/account_tree:"),
])
page.run()
