"""The model card: what the model is, what it was trained on, how well it does, against baselines."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import glossary
from ..summaries import count, mflops
from ..text import MAX_MESSAGE, md, plain

OPEN = "model_card_open"       # the card's expander: drawn, and its compute counted, only once opened


def _pct(x, missing: str = "not evaluated") -> str:
    return missing if x is None or pd.isna(x) else f"{100 * x:.2f}%"


def draw_model_card(card: dict, baselines: pd.DataFrame) -> None:
    """``card`` from ``summaries.model_card``, with ``flops_per_image`` (app.cache's count at the trained N, None
    where it cannot be counted); ``baselines`` from ``summaries.comparison_table``."""
    # Two rows of three, what the model costs and how well it does: six in one row cut "3,276,522" short at 1366 px.
    size, depth, compute = st.columns(3)
    steps, at_trained, peak = st.columns(3)
    size.metric("Parameters", f"{card['parameters']:,}")
    depth.metric("Effective depth", count(card['effective_depth'], 'layer'),
                 help=glossary.help_for("effective depth", "block call", extra="Transformer layers applied to "
                                        "reach the trained answer: steps x (n + 1) block calls x k layers for a "
                                        "ViTRM."))
    counted = f"at the trained N={card['trained_steps']}" if card["recursive"] else "(not recursive)"
    compute.metric("MFLOPs per image", mflops(card["flops_per_image"]),
                   help=glossary.help_for("MFLOPs", extra=f"One forward pass {counted}, counted by torch; unknown "
                                          "where its counter cannot run the model."))
    steps.metric("Trained steps N", card["trained_steps"])
    # "n/a" in the narrow metric columns, where "not evaluated" would be cut short; the text below says why.
    at_trained.metric(f"Top-1 at N={card.get('trained_n', card['trained_steps'])}",
                      _pct(card.get("top1_trained"), "n/a"), help=glossary.tip("top-1"))
    peak.metric("Peak top-1", _pct(card.get("top1_peak"), "n/a"),
                help=glossary.help_for("top-1", extra="not evaluated yet" if "peak_n" not in card
                                       else f"at N={card['peak_n']} of {card['steps_evaluated']} evaluated"))
    lines = [f"**{md(card['name'])}** · {md(card['architecture'])}"]
    if "block" in card:
        lines.append(f"Block: {card['block']}.")
    lines.append(f"Training data: {md(card['data'], MAX_MESSAGE)}.")
    if "top1_peak" in card:
        lines.append(f"Accuracy measured on {card['num_images']:,} test images"
                     f"{' (' + md(card['data_note']) + ')' if card.get('data_note') else ''}; it peaks at "
                     f"N={card['peak_n']} over the {card['steps_evaluated']} step counts evaluated.")
    else:
        lines.append("No metrics.json yet: run `python -m vitrm evaluate --checkpoint <dir> --data <spec>`, or "
                     "compute it on a few test images on the Dataset analysis page.")
    if card.get("epochs_logged") is not None:
        lines.append(f"Training log: {card['epochs_logged']} epochs so far.")
    glossary.markdown("  \n".join(lines))
    shown = baselines.assign(**{"model": baselines["model"].map(plain),
                                "parameters": baselines["parameters"].map("{:,}".format),
                                "top-1 at trained N": baselines["top-1 at trained N"].map(_pct)})
    st.table(shown.fillna("not evaluated"), hide_index=True)
    glossary.caption("Effective depth counts the transformer layers applied to reach an answer. A recursive model "
                     "reuses one small block, so it reaches a deep baseline's depth with a fraction of its "
                     "parameters; compare accuracies only between rows evaluated on the same test data.",
                     *baselines.columns)
