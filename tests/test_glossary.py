"""Every technical term a page shows comes with its meaning: the element that writes it has a tooltip
(``help``) from app/glossary.py, and a term inside a chart, a diagram or a notice is explained by a tooltip
in the same view. Walks every view of every page with Streamlit's AppTest."""

from __future__ import annotations

import json

from test_app import app, lab, open_model_card, run, select_models  # noqa: F401  (pytest fixtures)

from app import glossary

STRICT = {"markdown", "caption", "metric", "radio", "selectbox", "multiselect", "slider", "select_slider",
          "number_input", "toggle", "checkbox", "button", "button_group", "subheader", "header", "title"}


def _texts(element) -> tuple[str, list[str], str]:
    """(kind, the texts it shows, its tooltip) of one AppTest element."""
    proto, kind = element.proto, element.type
    if kind == "plotly_chart":
        spec = json.loads(proto.spec)
        layout = spec.get("layout", {})
        texts = [str((layout.get("title") or {}).get("text", ""))]
        texts += [str((axis.get("title") or {}).get("text", "")) for name, axis in layout.items()
                  if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict)]
        texts += [str(a.get("text", "")) for a in layout.get("annotations", [])]
        texts += [str(t.get("name", "")) for t in spec.get("data", [])]
        return kind, texts, ""
    if kind in ("graphviz_chart", "alert", "info", "warning", "success", "error"):
        return kind, [getattr(proto, "spec", "") or getattr(proto, "body", "")], ""
    texts = [getattr(proto, field, "") for field in ("body", "label") if isinstance(getattr(proto, field, ""), str)]
    for option in getattr(proto, "options", []):
        texts.append(option if isinstance(option, str) else getattr(option, "content", ""))
    return kind, texts, getattr(proto, "help", "") or ""


def _elements(block):
    for child in getattr(block, "children", {}).values():
        if hasattr(child, "children") and child.type not in STRICT:
            yield from _elements(child)
        else:
            yield child


def unexplained(at, view: str, shown: set[str], explained: set[str]) -> list[str]:
    """Terms shown in the view without their tooltip; adds the terms it shows to ``shown`` and those it explains
    to ``explained``."""
    strict, loose, tips = [], [], []
    for element in list(_elements(at.main)) + list(_elements(at.sidebar)):
        kind, texts, help_text = _texts(element)
        if kind == "markdown" and texts and texts[0] == glossary.full_text():
            continue                # the glossary itself
        if help_text:
            tips.append(help_text)
        terms = glossary.terms_in(*texts)
        (strict if kind in STRICT else loose).append((kind, terms, help_text, " | ".join(texts)[:90]))
    shown |= {t for _, terms, _, _ in strict + loose for t in terms}
    explained |= {t for t in glossary.FORMS if any(f"**{t}**: {glossary.TERMS[t]}" in h for h in tips)}
    missing = [f"{view}: {kind} '{text}' writes {term!r} without its tooltip"
               for kind, terms, help_text, text in strict for term in terms
               if f"**{term}**: {glossary.TERMS[term]}" not in help_text]
    missing += [f"{view}: {kind} '{text}' shows {term!r} and nothing in the view explains it"
                for kind, terms, _, text in loose for term in terms
                if not any(f"**{term}**: {glossary.TERMS[term]}" in h for h in tips)]
    return missing


def test_every_technical_term_on_every_page_comes_with_its_meaning(app, lab):  # noqa: F811
    missing, shown, explained = [], set(), set()
    at = open_model_card(select_models(run(app), lab, "vitrm-tiny", "vit-tiny"))
    for view in at.radio(key="explore_view").options:
        at.radio(key="explore_view").set_value(view)
        run(at)
        if view == "Evolving state":
            for measure in at.radio(key="z_measure").options:
                at.radio(key="z_measure").set_value(measure)
                run(at)
                missing += unexplained(at, f"Explore/{view}/{measure}", shown, explained)
            continue
        if view == "Attribution":       # the cheapest method: the words are the same for every method
            at.button_group(key="attr_methods").set_value(["saliency"])
            at.selectbox(key="row_method").set_value("saliency")
            at.button[0].click()
            run(at)
            next(b for b in at.button if b.label.startswith("Row for")).click()
            run(at)
        missing += unexplained(at, f"Explore/{view}", shown, explained)
    at.toggle(key="classroom").set_value(True)
    run(at)
    missing += unexplained(at, "Explore/classroom", shown, explained)
    at.toggle(key="classroom").set_value(False)

    at.switch_page("screens/dataset.py")
    run(at)
    for section in at.radio(key="analysis_view").options:
        at.radio(key="analysis_view").set_value(section)
        run(at)
        missing += unexplained(at, f"Dataset analysis/{section}", shown, explained)
    at.switch_page("screens/how_it_works.py")
    run(at)
    missing += unexplained(at, "How it works", shown, explained)

    assert not missing, "\n".join(missing)
    assert shown <= explained
    issue_terms = {"||z - previous z||", "RMS ||Δz||", "PCA", "rollout", "ECE", "block call", "halting output",
                   "latent z", "logit", "effective depth", "confidence", "Integrated Gradients", "Occlusion"}
    assert issue_terms <= shown, f"the walk never reached {issue_terms - shown}"
