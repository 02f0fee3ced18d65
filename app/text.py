"""Strings from outside, shown as text: the one owner of escaping in the app.

Anything the app did not write itself is data: a link's ``?image=`` value, an upload's file
name, every field of a checkpoint's files (class names, the data note, directory names, the
messages that quote them) and a dataset's folder and file names. Streamlit renders markdown in
far more places than ``st.markdown`` (captions, alerts, metric values, radio options, button and
expander labels, image captions), and Plotly renders a subset of HTML (``<a href>``, ``<b>``,
``<br>``) in labels, legends, annotations and hover text. So every outside string passes through
one of these before it reaches the page:

* :func:`md` for any Streamlit text that renders markdown (:func:`md_table` for a table of such text);
* :func:`plotly` for trace names, category labels, annotation and hover text;
* :func:`plain` for places that show text as it is (select options, table cells, file names):
  one line, no control characters, bounded length.

Never ``unsafe_allow_html``; never an outside string inside a Plotly ``hovertemplate`` (use
``%{fullData.name}`` or ``%{text}`` with escaped values instead).
"""

from __future__ import annotations

import re
import string

MAX_CHARS = 120
MAX_MESSAGE = 600       # a message that quotes a file or a value may run longer than a name
_ELLIPSIS = "…"
# Bidirectional controls can make a name read differently from what it is ("gpj.exe" shown as "exe.jpg"), and
# invisible characters make two names that look the same differ (or hide a word inside another): the zero-width
# space, non-joiner and joiner (U+200B-U+200D), the Arabic letter mark (U+061C), the word joiner and the invisible
# operators (U+2060-U+2064), the byte-order mark (U+FEFF), the Mongolian vowel separator (U+180E). All dropped.
_BIDI = {0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x180E, 0xFEFF, *range(0x2060, 0x2065)}
_DROPPED = _BIDI | _INVISIBLE
_LINE_BREAKS = {0x2028, 0x2029, 0x85}
# Every ASCII punctuation character may be backslash-escaped in CommonMark and then shows as itself;
# escaping all of them covers Streamlit's extensions too (":red[...]", "$...$" for LaTeX, "~~").
_MARKDOWN_SPECIAL = {c: "\\" + c for c in string.punctuation}
_PLOTLY_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|xmpp|www)(?=[:.])")
_JOINER = r"\1" + _WORD_JOINER


def plain(value: object, limit: int | None = MAX_CHARS) -> str:
    """``value`` as one line of visible text: line breaks, tabs and other control characters become
    spaces, bidirectional controls and invisible characters are dropped, and more than ``limit`` characters are
    cut with "…"."""
    text = str(value)
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or (0x80 <= code < 0xA0) or code in _LINE_BREAKS:
            out.append(" ")
        elif code not in _DROPPED:
            out.append(ch)
    text = "".join(out)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + _ELLIPSIS
    return text


def md(value: object, limit: int | None = MAX_CHARS) -> str:
    """``value`` for Streamlit markdown: :func:`plain`, then every punctuation character escaped, so that
    links, images, emphasis, HTML, code spans, headings, lists, colour directives and LaTeX all show as
    the characters they are made of; and bare addresses are kept from becoming links (:func:`_unlinkable`)."""
    return "".join(_MARKDOWN_SPECIAL.get(c, c) for c in _unlinkable(plain(value, limit)))


def md_table(rows: list[dict]) -> str:
    """``rows`` (dicts with the same keys: the header) as a markdown table, every header and cell through
    :func:`md` (which escapes ``|``, so that no value can end its cell)."""
    header = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(md(row.get(h, "")) for h in header) + " |" for row in rows]
    return "\n".join(lines) if rows else ""


def _unlinkable(text: str) -> str:
    """``text`` with an invisible word joiner inside every bare address.

    Streamlit's markdown (GitHub's dialect) turns bare ``http://...``, ``www....`` and ``name@host.tld``
    into links after escapes are resolved, so backslashes cannot stop it: a joiner after the scheme or
    "www" and before "@" breaks the pattern and shows nothing. (Found by tests/test_browser_hostile.py.)
    """
    return _AUTOLINK.sub(_JOINER, text).replace("@", _WORD_JOINER + "@")


def plotly(value: object, limit: int | None = MAX_CHARS) -> str:
    """``value`` for a Plotly label or hover text: :func:`plain`, with ``&``, ``<`` and ``>`` as entities,
    so that Plotly's pseudo-HTML (``<a href>``, ``<b>``, ``<br>``) shows as text."""
    return "".join(_PLOTLY_SPECIAL.get(c, c) for c in plain(value, limit))


def plotly_all(values, limit: int | None = MAX_CHARS) -> list[str]:
    return [plotly(v, limit) for v in values]
