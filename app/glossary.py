"""Plain words for the app's technical terms: one place, used by tooltips (``help=``) and the glossary.

``TERMS`` says what each term means; ``FORMS`` how the pages write it. ``help_for`` turns any text a page
shows (a caption, a label, a chart's title) into the tooltip for every term it mentions, so a view never
has to remember which terms its own sentences use.
"""

from __future__ import annotations

import re

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
    "||z||": "The length of a patch's latent vector z. Where the block ends in a LayerNorm (ViTRM Lab's own models), "
             "all patches have about the same length; the map shows how much each differs from the average patch.",
    "||z - previous z||": "How far a patch's latent vector moved in one step (its length of change). Large: the "
                          "model is still revising that patch; near zero: it has settled.",
    "||Δy||": "How far the answer token y moved in one step.",
    "RMS ||Δz||": "The typical size of the step's change over all patches (root mean square).",
    "PCA": "Principal component analysis: the few directions along which vectors differ most, used to draw "
           "many-dimensional vectors as colours or 2-D points.",
    "attention": "How much one token looks at each other token while it is updated (each row sums to 1).",
    "rollout": "Attention multiplied through the layers, so it says which inputs an output finally draws on, "
               "not just the last layer's look.",
    "block call": "One use of the shared block inside a step: a latent update or the answer update.",
    "attribution": "Which pixels raised the chosen class's score, computed by running the model backwards "
                   "through all steps up to the chosen one.",
    "Integrated Gradients": "Attribution that adds up the gradient along a path from a plain reference image to "
                            "the photo: how much each pixel, changed from the reference, raised the score.",
    "Saliency": "Attribution by the size of the gradient: how much the score would change if a pixel changed "
                "a little. It has no sign.",
    "GradientShap": "Attribution that averages Integrated Gradients over noisy copies of the photo and random "
                    "references (an estimate of Shapley values).",
    "Occlusion": "Attribution by covering a small window of the photo at a time and measuring how much the "
                 "score drops.",
    "logit": "A class's raw score before softmax turns the scores into probabilities.",
    "confidence": "The probability the model gives its own answer (the top class).",
    "ECE": "Expected calibration error: the average gap between how sure the model says it is and how often it "
           "is right. 0 is perfect.",
    "top-1": "Accuracy: the share of images whose most probable class is the true one.",
    "effective depth": "Layers a single input passes through in all: layers per block x block calls per step x "
                       "steps.",
    "MFLOPs": "Millions of floating-point operations (multiplications and additions) to classify one image: "
              "the compute one answer costs.",
    "out of distribution": "An image unlike the training images, such as a photo of none of the known classes.",
}

# How the pages write each term (regular expressions); a term without a form is explained in the glossary only.
FORMS = {
    "answer token y": r"(?i)\banswer token\b",
    "latent z": r"(?i)\blatents?\b",
    "halting output": r"(?i)\bhalting\b",
    "||z||": r"‖z‖",
    "||z - previous z||": r"‖z − previous z‖",
    "||Δy||": r"‖Δy‖",
    "RMS ||Δz||": r"RMS ‖Δz‖",
    "PCA": r"\bPCA\b",
    "attention": r"(?i)\battention\b",
    "rollout": r"(?i)\brollout\b",
    "block call": r"(?i)\bblock calls?\b",
    "Integrated Gradients": r"\bIntegrated Gradients\b",
    "Saliency": r"\bSaliency\b",
    "GradientShap": r"\bGradientShap\b",
    "Occlusion": r"\bOcclusion\b",
    "logit": r"(?i)\blogits?\b",
    "confidence": r"(?i)\bconfidence\b",
    "ECE": r"\bECE\b",
    "top-1": r"(?i)\btop-1\b",
    "effective depth": r"(?i)\beffective depth\b",
    "MFLOPs": r"\bMFLOPs\b",
}
_PATTERNS = {term: re.compile(form) for term, form in FORMS.items()}


def tip(*terms: str) -> str:
    """Tooltip text for the terms named (for a widget's or a caption's ``help=``)."""
    return "\n\n".join(f"**{t}**: {TERMS[t]}" for t in terms)


def terms_in(*texts: str) -> list[str]:
    """The terms, in glossary order, that any of ``texts`` mentions."""
    return [term for term, pattern in _PATTERNS.items() if any(pattern.search(t or "") for t in texts)]


def help_for(*texts: str, extra: str | None = None) -> str | None:
    """The tooltip for every term the texts mention (after ``extra``, a widget's own help), or None."""
    parts = [extra] if extra else []
    found = terms_in(*texts)
    if found:
        parts.append(tip(*found))
    return "\n\n".join(parts) or None


def caption(body: str, *context: str, help: str | None = None, **kwargs) -> None:
    """``st.caption`` with a tooltip for every term in it and in ``context`` (the chart or table it explains)."""
    st.caption(body, help=help_for(body, *context, extra=help), **kwargs)


def markdown(body: str, *context: str, help: str | None = None, **kwargs) -> None:
    """``st.markdown`` with a tooltip for every term in it and in ``context``."""
    st.markdown(body, help=help_for(body, *context, extra=help), **kwargs)


def draw() -> None:
    """Every term, in a popover next to the page title."""
    # A Material icon, not an emoji: an emoji makes Streamlit import its emoji table on a fresh server's first page.
    with st.popover("Glossary", icon=":material/menu_book:"):
        # One element for all the terms, not one each: the popover is drawn (hidden) on every page run.
        st.markdown(full_text())


def full_text() -> str:
    """The glossary as the popover shows it: every term in bold with its meaning, one paragraph each."""
    return "\n\n".join(f"**{term}**: {meaning}" for term, meaning in TERMS.items())
