"""The out-of-distribution rule of a checkpoint (vitrm.ood), applied to the image on screen, cached."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from vitrm import ood

from . import cache, checkpoints


@st.cache_resource(max_entries=8, show_spinner=False)
def rule(path: str, mtime: float) -> ood.OODRule | str | None:
    """The rule; None when the checkpoint has none; the message when its files are damaged or pass the
    checkpoint's budget. Read once, with the checkpoint's other files (``checkpoints.CheckpointFiles.ood_rule``),
    so that it is charged to their one budget; cached here by the weights' mtime, so that a page run looks it up
    without a stat of every file."""
    return cache.checkpoint_files(path, checkpoints.files_mtime(Path(path))).ood_rule


@st.cache_data(max_entries=256, show_spinner=False)
def score(path: str, mtime: float, image_key: str, _trace) -> float | None:
    """The image's score under the rule (None without a usable rule or for a non-recursive model)."""
    found = rule(path, mtime)
    model = cache.load_model(path, mtime)
    if (not isinstance(found, ood.OODRule) or not model.config.recursive
            or _trace.steps < model.config.trained_steps):
        return None
    return float(found.score(ood.trace_features(model, _trace, found.feature))[0])


def check(path: str, mtime: float, image_key: str, trace) -> tuple[float | None, dict | None, str | None]:
    """(the image's score, the rule's recorded facts, a message when the rule's files are damaged)."""
    found = rule(path, mtime)
    if isinstance(found, str):
        return None, None, found
    if found is None:
        return None, None, None
    return score(path, mtime, image_key, trace), found.facts, None
