"""'How ViTRM works': the recursion drawn from a model's real config."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vitrm import ModelConfig, ViTRMConfig

from .. import glossary
from ..summaries import count
from ..text import md


def tokenizer_text(cfg: ViTRMConfig) -> str:
    if cfg.tokenizer == "conv" and cfg.conv_stages:
        return (f"{cfg.conv_stages} conv stage{'s' if cfg.conv_stages > 1 else ''} + linear patches, "
                f"{cfg.image_size}→{cfg.grid} per side")
    if cfg.tokenizer == "conv":
        return f"convolutional stem, {cfg.image_size}→{cfg.grid} per side"
    return f"{cfg.patch_size}x{cfg.patch_size} patches, linear embedding"


# Streamlit draws every text of a graphviz chart in its own font at 9.6 units of the drawing, whatever the DOT
# source's fontsize (its CSS: ``calc(twoSm * 0.8)``), and the drawing in pt at its own size: 12.8 px, under the 14 px
# a projector at 1366 needs (tests/test_browser_classroom.py). So the boxes are sized for that text (FONT_SIZE), and
# the drawing is stretched to DRAWN_WIDTH px, 1.25 times its own width (575 px for a recursive model's config,
# 216-233 px for a baseline's, measured in Chromium): type of 16 px, at 1366 beside the sidebar as at 1920, and
# smaller only where the page is narrower than the drawing. (graphviz's own dpi or size! scaling is clipped by
# Streamlit's renderer, which fits the view box to the unscaled drawing.)
FONT_SIZE = 10
DRAWN_WIDTH = {True: 720, False: 290}       # px, by cfg.recursive
GRAPH = f'fontname="Helvetica", fontsize={FONT_SIZE}, pad=0.05'
NODE = f'shape=box, style="rounded,filled", fillcolor="#f3f6fa", fontname="Helvetica", fontsize={FONT_SIZE}'


def diagram(cfg: ModelConfig, parameters: int) -> str:
    """Graphviz DOT source of the model; every number comes from ``cfg``."""
    if not cfg.recursive:
        body = (f"{count(cfg.layers, 'unshared transformer layer')}" if cfg.arch == "vit"
                else f"residual CNN, widths {list(cfg.cnn_widths)}")
        return f"""digraph {{ rankdir=TB; graph [{GRAPH}]; ranksep=0.25; node [{NODE}];
  img [label="image\\n{cfg.image_size}x{cfg.image_size}x{cfg.in_channels}"];
  net [label="{body}\\n{parameters:,} parameters"];
  out [label="class logits ({cfg.num_classes})"];
  img -> net -> out; }}"""
    t, d = cfg.num_tokens, cfg.dim
    latent_tokens = 2 * t + 1 if cfg.combine == "concat" else t + 1
    latent_input = "[y, x, z]" if cfg.combine == "concat" else "[y, x + z]"
    # Top to bottom and narrow: the three states side by side, then the step (its label below it, where no arrow
    # crosses it) with the shared block f beside its latent update and the heads beside its answer update.
    return f"""digraph {{
  rankdir=TB; newrank=true; graph [{GRAPH}]; nodesep=0.25; ranksep=0.3;
  node [{NODE}];
  edge [fontname="Helvetica", fontsize={FONT_SIZE}];
  img [label="image {cfg.image_size}x{cfg.image_size}x{cfg.in_channels}"];
  tok [label="tokenizer: {tokenizer_text(cfg)}\\n+ position embedding"];
  x [label="x: image tokens\\n{t} x {d}", fillcolor="#dbe9f6"];
  y0 [label="y₀: learned answer token\\n1 x {d}", fillcolor="#fde2c8"];
  z0 [label="z₀: learned latents\\n{t} x {d}", fillcolor="#dcefd9"];
  subgraph cluster_step {{
    label="one recursion step · repeated N times\\n(trained with N={cfg.trained_steps})"; labelloc=b;
    style="rounded,dashed"; color="#888888";
    latent [label="latent update, n={cfg.latent_updates}: {count(cfg.latent_updates, 'time')}\\nz ← f({latent_input})\\n{latent_tokens} tokens", fillcolor="#dcefd9"];
    answer [label="answer update\\ny ← f([y, z])\\n{t + 1} tokens", fillcolor="#fde2c8"];
    latent -> answer [label=" z"];
  }}
  f [label="f: ONE shared block\\n{count(cfg.layers, 'layer')} · {count(cfg.heads, 'head')} · width {d}\\nthe same weights in every call", shape=box, style="filled", fillcolor="#fff6bf"];
  heads [label="heads on y, after every step\\nclass logits ({cfg.num_classes})\\n+ halting: P(answer is right)"];
  {{ rank=same; x; y0; z0; }}
  {{ rank=same; latent; f; }}
  {{ rank=same; answer; heads; }}
  img -> tok -> x -> latent;
  tok -> z0 [style=invis]; tok -> y0 [style=invis];
  y0 -> latent; z0 -> latent;
  answer -> latent [label="next step: y, z", style=dashed, constraint=false];
  answer -> heads;
  f -> latent [style=dotted, arrowhead=none]; f -> answer [style=dotted, arrowhead=none];
}}"""


def facts_table(cfg: ModelConfig, parameters: int, by_part: dict[str, int]) -> pd.DataFrame:
    """``by_part``: parameter counts per part in words (``vitrm.analysis.parameters_by_part``)."""
    rows = [("parameters", f"{parameters:,}")]
    rows += [(f"  in the {part}", f"{n:,}") for part, n in sorted(by_part.items(), key=lambda kv: -kv[1])]
    if cfg.recursive:
        calls = cfg.block_calls_per_step
        rows += [("block calls per step", f"{calls} (n={cfg.latent_updates} latent + 1 answer)"),
                 ("layers applied per step", f"{calls * cfg.layers}"),
                 ("effective depth at N", f"{count(cfg.effective_depth, 'layer')} "
                                          f"({count(cfg.trained_steps, 'step')} x {count(calls, 'call')} x "
                                          f"{count(cfg.layers, 'layer')})"),
                 ("how x, y, z are combined", f"'{cfg.combine}'")]
    return pd.DataFrame(rows, columns=["", "value"])


def draw_how_it_works(cfg: ModelConfig, parameters: int, by_part: dict[str, int], name: str) -> None:
    chart = diagram(cfg, parameters)
    with st.container(width=DRAWN_WIDTH[cfg.recursive]):
        st.graphviz_chart(chart, width="stretch")
    glossary.caption(f"Drawn from the configuration of {md(name)}. Solid arrows carry data; dotted lines show that "
                     "both updates use the same block f.", chart)
    if cfg.recursive:
        glossary.markdown(f"""
**In plain words.** The picture is cut into {cfg.num_tokens} patches, and each becomes a token of {cfg.dim} numbers
(**x**). The model keeps two more things in mind: one **answer token y**, where its current guess lives, and one
**latent token z per patch**, a scratch pad for its reasoning.

Each step, the model first *thinks* {count(cfg.latent_updates, 'time', number=False)}: it updates every latent z by looking at the
image, its current answer and the latents themselves. Then it *commits*: it updates the answer y by looking at the
latents. Both use the same small block f of {count(cfg.layers, 'layer')}, so running more steps costs time but no extra
parameters. After every step the heads read a class and a halting probability (how sure the model is that its
answer is right) from y.

It was trained to answer after {count(cfg.trained_steps, 'step')}, with its heads read after every step (deep supervision;
the model card says which steps carried the class loss), so it can be asked at any step, and even for more steps
than it was trained with.
""")
    st.table(facts_table(cfg, parameters, by_part).set_index(""))
