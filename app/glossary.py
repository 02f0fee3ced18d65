"""Plain words for the app's technical terms: one place, used by tooltips (``help=``) and the glossary."""

from __future__ import annotations

import streamlit as st

TERMS = {
    "recursion step": "One pass of the same small block over the model's working memory: the latents z are "
                      "updated from the image and the answer, then the answer y from the latents. N steps = "
                      "the same block used N times.",
    "N": "How many recursion steps the model runs before it answers.",
    "answer token y": "A vector the model keeps as its current answer; the class probabilities are read from it "
                      "after every step.",
    "latent z": "The model's scratch memory: one vector per image patch, rewritten at every step.",
    "halting output": "A second read-out of y, trained to guess whether the current answer is right. A guess, "
                      "not a promise: the scrubber says how often such a value was right on the test set.",
    "||z - previous z||": "How far a patch's latent vector moved in one step (its length of change). Large: the "
                          "model is still revising that patch; near zero: it has settled.",
    "RMS ||Δz||": "The typical size of the step's change over all patches (root mean square).",
    "PCA": "Principal component analysis: the few directions along which vectors differ most, used to draw "
           "many-dimensional vectors as colours or 2-D points.",
    "attention": "How much one token looks at each other token while it is updated (each row sums to 1).",
    "rollout": "Attention multiplied through the layers, so it says which inputs an output finally draws on, "
               "not just the last layer's look.",
    "block call": "One use of the shared block inside a step: a latent update or the answer update.",
    "attribution": "Which pixels raised the chosen class's score, computed by running the model backwards "
                   "through all steps up to the chosen one.",
    "ECE": "Expected calibration error: the average gap between how sure the model says it is and how often it "
           "is right. 0 is perfect.",
    "effective depth": "Layers a single input passes through in all: layers per block x block calls per step x "
                       "steps.",
    "out of distribution": "An image unlike the training images, such as a photo of none of the known classes.",
}


def tip(*terms: str) -> str:
    """Tooltip text for the terms named (for a widget's or a caption's ``help=``)."""
    return "\n\n".join(f"**{t}**: {TERMS[t]}" for t in terms)


def draw() -> None:
    """Every term, in a popover next to the page title."""
    with st.popover("Glossary", icon="📖"):
        for term, meaning in TERMS.items():
            st.markdown(f"**{term}**: {meaning}")
