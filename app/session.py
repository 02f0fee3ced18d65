"""Per-session state: which models are loaded, which one is in focus, which image is chosen.

Only choices live in ``st.session_state``; models, traces and files live in the shared caches
(``app.cache``), keyed by content, so one user's results never show up for another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import vitrm
from vitrm import CheckpointError

from . import cache, checkpoints
from .text import md

# Widget keys whose values must survive a switch between pages (Streamlit forgets the
# state of widgets that a page does not draw, unless it is written back each run).
PERSISTENT = ("source", "gallery_file", "upload_choice", "focus", "explore_view", "analysis_view", "gallery_kind",
              "attr_methods", "attr_target", "row_method", "classroom")
PERSISTENT_PREFIXES = ("n::", "step::", "k::", "analysis_n::", "errors::", "compare::")
SELECTED = "selected_checkpoints"
TYPED = "typed_checkpoints"


@dataclass
class LoadedModel:
    path: Path
    mtime: float                      # of the weights
    files_mtime: float                # of the files beside them (checkpoints.files_mtime)
    files: checkpoints.CheckpointFiles
    facts: dict

    @property
    def key(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> vitrm.ModelConfig:
        return self.files.config

    @property
    def recursive(self) -> bool:
        return self.config.recursive

    @property
    def max_steps(self) -> int:
        return vitrm.steps.max_steps(self.config)

    @property
    def default_steps(self) -> int:
        return vitrm.steps.default_steps(self.config)

    @property
    def card(self) -> dict:
        return cache.model_card(self.key, self.files_mtime, self.mtime)


def keep_widget_state() -> None:
    for key in list(st.session_state.keys()):
        if key in PERSISTENT or key.startswith(PERSISTENT_PREFIXES):
            st.session_state[key] = st.session_state[key]


def load(path: Path) -> LoadedModel:
    """Load through the caches; raises CheckpointError with the library's message."""
    mtime, files_mtime = checkpoints.weights_mtime(path), checkpoints.files_mtime(path)
    files = cache.checkpoint_files(str(path), files_mtime)
    facts = cache.model_facts(str(path), mtime)
    return LoadedModel(path=path, mtime=mtime, files_mtime=files_mtime, files=files, facts=facts)


def load_all(paths: list[Path]) -> tuple[list[LoadedModel], list[str]]:
    models, errors = [], []
    for path in paths:
        try:
            models.append(load(path))
        except CheckpointError as e:
            errors.append(str(e))
    return models, errors


def models() -> list[LoadedModel]:
    """The models chosen in the sidebar (set by app/main.py each run)."""
    return st.session_state.get("loaded_models", [])


def focus(loaded: list[LoadedModel]) -> LoadedModel:
    """The model the Explore page shows, chosen among the loaded ones."""
    names = [m.key for m in loaded]
    if st.session_state.get("focus") not in names:
        st.session_state["focus"] = names[0]
    if len(loaded) > 1:
        st.radio("Model in focus", names, key="focus", horizontal=True, format_func=lambda k: md(Path(k).name))
    return loaded[names.index(st.session_state["focus"])]


def baseline_models(exclude: set[str]) -> list[LoadedModel]:
    """The baselines found beside the checkpoints (vit-cifar10, cnn-cifar10, ...); a broken one is left out."""
    found = []
    for path in checkpoints.discover():
        if str(path) in exclude:
            continue
        try:
            config = vitrm.read_config(path)
            if config.recursive:
                continue
            found.append(load(path))
        except CheckpointError:
            continue
    return found


def baseline_cards(exclude: set[str]) -> list[dict]:
    """Cards of the baselines found beside the checkpoints."""
    return [m.card for m in baseline_models(exclude)]


def open_dataset_image(path: str, label: str, model: LoadedModel | None = None, step: int | None = None) -> None:
    """Button callback from the analysis galleries: show this image on the Explore page.

    With ``model`` and ``step``: that model (whose gallery it is) comes into focus, at the gallery's
    step N, so the scrubber opens on the answer that put the image in the gallery.
    """
    st.session_state["dataset_image"] = (path, label)
    st.session_state["source"] = "Dataset image"
    st.session_state["goto_explore"] = True
    if model is None:
        return
    st.session_state["focus"] = model.key
    if model.recursive and step is not None:
        step = max(1, min(int(step), model.max_steps))
        n_key = f"n::{model.key}"
        shown_n = st.session_state.get(n_key, model.default_steps)
        st.session_state[n_key] = max(int(shown_n), step)
        st.session_state[f"step::{model.key}"] = step
        st.session_state["playing"] = False


def require_models() -> list[LoadedModel]:
    """The loaded models; without any, explain how to get one and stop the page."""
    loaded = models()
    if loaded:
        return loaded
    root = checkpoints.checkpoints_root()
    st.warning(f"No checkpoint is loaded. None was found in {md(root, None)}, or none is selected in the sidebar.")
    st.markdown(f"""
To train a model like the flagship's first stage on the CIFAR-10 JPEG copy (a few minutes per epoch
on 2 CPU cores; the shipped flagship's model card lists the commands of all its stages):

```
python -m vitrm train configs/vitrm-cifar10.yaml --out checkpoints/vitrm-cifar10
python -m vitrm evaluate --checkpoint checkpoints/vitrm-cifar10 --data imagefolder:../shared/datasets/cifar10-jpeg
```

For a one-minute smoke run: `python -m vitrm train configs/smoke.yaml --out checkpoints/smoke`.
Each epoch writes `model.safetensors` and `config.json` into the checkpoint directory; reload this page
to see it. A checkpoint elsewhere can be typed into the sidebar if its directory is under {md(root, None)} or a root
listed in `VITRM_CHECKPOINT_ROOTS`.
""")
    st.stop()
