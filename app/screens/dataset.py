"""Page: how the loaded models do over a whole test set, read from metrics.json and predictions.csv."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import vitrm
from app import cache, checkpoints, glossary, reliability, session, summaries
from app.text import MAX_MESSAGE, md, plain
from app.views import (
    analysis,
    compare,
    efficiency,
    error_table,
    galleries,
    list_nav,
    projector,
    reliability_diagram,
    trained_n,
)
from vitrm import paths

SECTIONS = ["Accuracy vs N", efficiency.SECTION, "Per class", "Confusion matrix", error_table.SECTION, compare.SECTION,
            "Calibration", "Halting", "Galleries", projector.SECTION, "Training log"]
GALLERY_KINDS = {"misclassified": "Misclassified at N", "fixed": "Fixed by recursion (wrong at step 1, right at N)",
                 "broken": "Broken by recursion (right at step 1, wrong at N)"}


def computed(model: session.LoadedModel) -> cache.Evaluation | None:
    """What the Compute button gave for this model (and these weights) in this session, if anything."""
    return st.session_state.get("computed_evaluations", {}).get((model.key, model.mtime))


def saved(model: session.LoadedModel) -> cache.Evaluation | None:
    files = model.files
    return None if files.metrics is None else cache.Evaluation(
        metrics=files.metrics, predictions=files.predictions,
        image_root=checkpoints.data_root(files.metrics.get("data")))


def evaluation(model: session.LoadedModel) -> cache.Evaluation | None:
    """The model's evaluate output: computed in this session when the user asked for it, else the files
    in its directory (metrics.json, with predictions.csv when present), else None."""
    return computed(model) or saved(model)


def compute_controls(model: session.LoadedModel) -> None:
    """k, and a button that runs vitrm.evaluate's figures on k test images with a progress bar."""
    source = cache.sample_source(model.files)
    if source is None:
        st.info("No test images were found for this model's classes (its data directory is absent and the "
                "built-in gallery holds other classes).")
        return
    c1, c2 = st.columns([1, 3])
    st.session_state.setdefault(f"k::{model.key}", min(200, source.size))
    k = int(c1.number_input("k test images", min_value=1, max_value=source.size, step=50, key=f"k::{model.key}"))
    if c2.button(f"Compute on {k} images from {md(source.description, MAX_MESSAGE)}", key=f"compute::{model.key}"):
        bar = st.progress(0.0, text="Preparing images…")
        result = cache.evaluate_sample(model.key, model.mtime, source, k,
                                       _progress=lambda done, text: bar.progress(done, text=text))
        bar.empty()
        st.session_state.setdefault("computed_evaluations", {})[(model.key, model.mtime)] = result
        st.rerun()


def offer_to_compute(model: session.LoadedModel) -> None:
    missing = "predictions.csv.gz" if model.files.metrics is not None else "metrics.json or predictions.csv.gz"
    st.warning(f"{md(model.name)} has no {missing} yet. Run python -m vitrm evaluate --checkpoint "
               f"{md(model.path, MAX_MESSAGE)} --data SPEC for the full test set, or "
               "compute them here on a sample (kept in this session only; nothing is written).")
    compute_controls(model)


def _forget_computed(key: tuple) -> None:
    st.session_state.get("computed_evaluations", {}).pop(key, None)


def offer_to_recompute(model: session.LoadedModel) -> None:
    """For a model whose figures are already there: recompute them on k test images, or go back."""
    with st.expander(f"Recompute {md(model.name)}'s figures on k test images"):
        st.caption("Runs the model here on a sample of test images; the result replaces the figures below for "
                   "this session only (nothing is written into the checkpoint).")
        compute_controls(model)
    if computed(model) is not None and saved(model) is not None:
        st.button(f"Back to {md(model.name)}'s saved metrics.json", key=f"forget::{model.key}",
                  on_click=_forget_computed, args=((model.key, model.mtime),))


def gather(models: list[session.LoadedModel]) -> dict[str, cache.Evaluation]:
    """Each model's evaluation, with an offer to compute (or recompute) it; problems with its files said."""
    evaluations = {}
    for m in models:
        ev = evaluation(m)
        if ev is None or ev.predictions is None:
            offer_to_compute(m)
        else:
            offer_to_recompute(m)
        if ev is not None:
            evaluations[m.key] = ev
            if ev.computed_note:
                st.info(f"{md(m.name)}: {md(ev.computed_note, MAX_MESSAGE)}")
    for m in models:
        for problem in m.files.problems:
            st.error(f"{md(m.name)}: {md(problem, MAX_MESSAGE)}")
    return evaluations


def training_logs(models: list[session.LoadedModel]) -> None:
    logged = [m for m in models if m.files.train_log is not None and not m.files.train_log.empty]
    if not logged:
        st.info("No train_log.csv beside the loaded checkpoints.")
    for m in logged:
        st.subheader(md(m.name))
        analysis.draw_train_log(m.files.train_log)


def curves(section: str, named: dict, evaluations: dict, focus_keys: list[str]) -> None:
    """Accuracy vs N (with the baselines beside it) or calibration vs N, one curve per recursive model."""
    top1, ece, notes = {}, {}, set()
    for key in focus_keys:
        m, metrics = named[key], evaluations[key].metrics
        if m.recursive:
            top1[summaries.budget_label(m.card)] = {"top1": metrics["top1_by_step"],
                                                    "trained": m.config.trained_steps}
            ece[m.name] = metrics["ece_by_step"]
        notes.add(f"{metrics.get('num_images', '?')} images of {md(metrics.get('data', '?'))}"
                  + (f" ({md(metrics['data_note'])})" if metrics.get("data_note") else ""))
    baselines = {summaries.budget_label(c): c["top1_trained"] for c in [named[k].card for k in focus_keys] +
                 session.baseline_cards(set(named)) if not c["recursive"] and "top1_trained" in c}
    if section == "Accuracy vs N":
        test_time, trained = st.columns(2)
        with test_time:
            analysis.draw_accuracy(top1, baselines, "; ".join(sorted(notes)))
        with trained:
            trained_n.draw_trained_n(cache.trained_n_sweeps())
    elif ece:
        calibration(named, evaluations, focus_keys, ece)
    else:
        st.info("Calibration vs N needs a recursive model.")


def calibration(named: dict, evaluations: dict, focus_keys: list[str], ece: dict[str, list[float]]) -> None:
    """ECE vs N of every recursive model, and beside it one model's reliability diagram at a chosen step."""
    left, right = st.columns(2)
    with left:
        analysis.draw_ece(ece)
    with right:
        usable = [k for k in focus_keys if named[k].recursive and evaluations[k].predictions is not None]
        if not usable:
            st.info("The reliability diagram needs predictions.csv.gz (written by python -m vitrm evaluate).")
            return
        key = usable[0] if len(usable) == 1 else st.selectbox("Reliability diagram of", usable,
                                                              key="reliability_model",
                                                              format_func=lambda k: plain(Path(k).name))
        ev = evaluations[key]
        step = _step_slider("Step", len(ev.metrics["ece_by_step"]), named[key].config.trained_steps,
                            f"reliability_step::{key}")
        reliability_diagram.draw(reliability.calibration_bins(ev.predictions, step), step,
                                 ev.metrics["ece_by_step"][step - 1])


def projector_section(model: session.LoadedModel, class_names) -> None:
    """The map of every test image's answer over the steps, from projection.safetensors; a bad file said plainly."""
    found = model.files.projection          # read once, charged to the checkpoint's one budget with its other files
    if found is None:
        projector.missing(model.name, str(model.path))
        return
    problem = found if isinstance(found, str) else vitrm.projection.matches(found, model.files.predictions)
    if problem:
        st.error(md(f"The map of answers cannot be shown: {problem}", MAX_MESSAGE))
        return
    projector.draw(model.key, found, class_names, model.config.trained_steps)


def one_model(section: str, model: session.LoadedModel, ev: cache.Evaluation) -> None:
    """The sections drawn for one model at a time: per class, confusion, halting, galleries."""
    metrics, steps = ev.metrics, len(ev.metrics["top1_by_step"])
    class_names = metrics.get("class_names") or list(model.config.class_names)
    n = 1
    if steps > 1 and section in ("Confusion matrix", "Galleries", error_table.SECTION):
        st.session_state.setdefault(f"analysis_n::{model.key}", min(model.config.trained_steps, steps))
        n = st.slider("N (steps)", 1, steps, key=f"analysis_n::{model.key}")
    if section == "Per class":
        analysis.draw_per_class(metrics["per_class_by_step"], class_names)
    elif section == "Confusion matrix":
        error_table.draw_clickable_confusion(model.key, metrics["confusion_by_step"][n - 1], class_names, n)
    elif section == error_table.SECTION:
        table_section(model, ev, n, class_names)
    elif section == "Halting":
        if not metrics.get("halting"):
            st.info(f"{md(model.name)} has no halting head (a non-recursive baseline).")
        else:
            sweep = vitrm.analysis.halting_tradeoff(ev.predictions) if ev.predictions is not None else None
            analysis.draw_halting(metrics["halting"], metrics["top1_by_step"], sweep)
    elif section == "Galleries":
        galleries_section(model, ev, n, class_names)
    elif section == projector.SECTION:
        projector_section(model, class_names)


def table_section(model: session.LoadedModel, ev: cache.Evaluation, step: int, class_names) -> None:
    if ev.predictions is None:
        st.info("The table needs predictions.csv.gz beside metrics.json (written by python -m vitrm evaluate).")
        return
    steps = len(ev.metrics["top1_by_step"])
    error_table.draw_error_table(model, ev.predictions, class_names, step, min(model.config.trained_steps, steps),
                                 ev.image_root)


def comparable(a_metrics: dict, a_classes: list[str], ev: cache.Evaluation | None, classes: list[str]) -> str | None:
    """Why a checkpoint's evaluation cannot be set beside A's, or None when it can."""
    if ev is None or ev.predictions is None:
        return "no predictions.csv.gz"
    if classes != a_classes:
        return "other classes"
    if (ev.metrics.get("data"), ev.metrics.get("split")) != (a_metrics.get("data"), a_metrics.get("split")):
        return "evaluated on other data"
    return None


def compare_candidates(a: session.LoadedModel, ev_a: cache.Evaluation, named: dict,
                       evaluations: dict) -> tuple[dict[str, cache.Evaluation], list[str]]:
    """The other checkpoints (discovered or loaded) evaluated on A's data with a per-image table, by key;
    and, for the rest, their names with the reason they are left out."""
    found = {str(p): p for p in checkpoints.discover()} | {k: m.path for k, m in named.items()}
    found.pop(a.key, None)
    a_classes = list(ev_a.metrics.get("class_names") or a.config.class_names)
    usable, left_out = {}, []
    for key, path in sorted(found.items(), key=lambda kv: (kv[1].name, kv[0])):
        if key in named:
            ev, classes = evaluations.get(key), named[key].config.class_names
        else:
            try:
                files = cache.checkpoint_files(key, checkpoints.files_mtime(path))
            except vitrm.CheckpointError:
                left_out.append(f"{path.name} (unreadable config.json)")
                continue
            classes = files.config.class_names
            ev = None if files.metrics is None else cache.Evaluation(
                metrics=files.metrics, predictions=files.predictions,
                image_root=checkpoints.data_root(files.metrics.get("data")))
        reason = comparable(ev_a.metrics, a_classes, ev, list(ev.metrics.get("class_names") or classes)
                            if ev is not None else list(classes))
        if reason is None:
            usable[key] = ev
        else:
            left_out.append(f"{path.name} ({reason})")
    return usable, left_out


def _step_slider(label: str, steps: int, trained: int, key: str) -> int:
    if steps <= 1:
        return 1
    st.session_state.setdefault(key, min(trained, steps))
    return int(st.slider(label, 1, steps, key=key))


def compare_section(a: session.LoadedModel, ev_a: cache.Evaluation, named: dict, evaluations: dict) -> None:
    """A (the model chosen above) against a second checkpoint evaluated on the same images."""
    if ev_a.predictions is None:
        st.info("Comparing needs predictions.csv.gz beside metrics.json (written by python -m vitrm evaluate).")
        return
    usable, left_out = compare_candidates(a, ev_a, named, evaluations)
    if left_out:
        st.caption(md(f"Left out: {', '.join(left_out)}.", MAX_MESSAGE))
    if not usable:
        st.info("No other checkpoint has a per-image table (predictions.csv.gz) on the same test data. Evaluate one "
                "with python -m vitrm evaluate --data " + md(ev_a.metrics.get("data", "SPEC"), MAX_MESSAGE) + ".")
        return
    with_key = compare.state_key(a.key, "with")
    if st.session_state.get(with_key) not in usable:
        st.session_state.pop(with_key, None)
        # B starts as another loaded model, the one the user has in mind, not the first name alphabetically.
        loaded = [k for k in named if k != a.key and k in usable]
        if loaded:
            st.session_state[with_key] = loaded[0]
    b_key = st.selectbox(f"Compare {md(a.name)} (A) with… (B)", list(usable), key=with_key,
                         format_func=lambda k: plain(Path(k).name))
    try:
        b = named[b_key] if b_key in named else session.load(Path(b_key))
    except vitrm.CheckpointError as e:
        st.error(md(e, MAX_MESSAGE))
        return
    ev_b = usable[b_key]
    card_a, card_b = a.card, b.card
    c1, c2 = st.columns(2)
    with c1:
        step_a = _step_slider(f"A ({md(a.name)}) at step", len(ev_a.metrics["top1_by_step"]),
                              card_a["trained_steps"], compare.state_key(a.key, "step_a"))
    with c2:
        step_b = _step_slider(f"B ({md(b.name)}) at step", len(ev_b.metrics["top1_by_step"]),
                              card_b["trained_steps"], compare.state_key(a.key, f"step_b::{b.key}"))
    try:
        result = vitrm.compare_predictions(ev_a.predictions, ev_b.predictions, classes_a=ev_a.metrics.get(
            "class_names") or a.config.class_names, classes_b=ev_b.metrics.get("class_names") or b.config.class_names,
            step_a=step_a, step_b=step_b)
    except vitrm.ComparisonError as e:
        st.error(md(f"{a.name} and {b.name} cannot be compared image for image: {e}", MAX_MESSAGE))
        return
    computed_here = [m.name for m, ev in ((a, ev_a), (b, ev_b)) if ev.computed_note]
    notes = compare.notes(ev_a.metrics, ev_b.metrics, step_a, step_b, card_a, card_b, computed_here)
    cards = [card | {"flops_per_image": cache.flops_per_image(m.key, m.mtime)}
             for m, card in ((a, card_a), (b, card_b))]
    compare.draw_comparison(result, a, b, ev_a.image_root or ev_b.image_root, cards, notes)


def galleries_section(model: session.LoadedModel, ev: cache.Evaluation, n: int, class_names) -> None:
    if ev.predictions is None:
        st.info("The galleries need predictions.csv.gz beside metrics.json (written by python -m vitrm evaluate).")
        return
    if ev.image_root is None:
        why = checkpoints.data_root_problem(ev.metrics.get("data")) or "no data folder is named in metrics.json"
        st.warning(f"The images themselves are not shown ({md(why, limit=MAX_MESSAGE)}), so only their "
                   "predictions can be listed.")
    kind = st.radio("Gallery", list(GALLERY_KINDS), format_func=GALLERY_KINDS.get, horizontal=True,
                    key="gallery_kind")
    root = ev.image_root
    rows = summaries.gallery_rows(ev.predictions, kind, n)

    def inside(p) -> str | None:
        """A row's image file: relative to the data folder and inside it, never elsewhere (else None)."""
        try:
            return str(paths.confine(root, p)) if root is not None and isinstance(p, str) and p else None
        except paths.UnsafePathError:
            return None

    def load(p: str):
        """The row's image, or a sentence saying why there is none."""
        if root is None or not p:
            return "image file not found"
        file = inside(p)
        if file is None:
            return "refused: the row's path leads outside the data folder"
        return cache.dataset_thumbnail(file) or "image file not found or unreadable"

    def open_from_gallery(path: str, label: str) -> None:
        """Open the image, with the whole gallery as the list that previous/next walk through."""
        listed = [(inside(p), str(lab)) for p, lab in zip(rows["path"], rows["label_name"])]
        list_nav.remember(f"{GALLERY_KINDS[kind]} at N={n}", [(f, lab) for f, lab in listed if f], model, n)
        session.open_dataset_image(inside(path), label, model, n)

    galleries.draw_gallery(rows, n, class_names, load=load, on_open=open_from_gallery, key=f"gallery::{kind}")


def page() -> None:
    models = session.require_models()
    st.header("Dataset analysis")
    evaluations = gather(models)
    if not evaluations and not any(m.files.train_log is not None for m in models):
        return
    section = st.radio("Section", SECTIONS, key="analysis_view", horizontal=True, label_visibility="collapsed",
                       help=glossary.help_for(*SECTIONS))
    named = {m.key: m for m in models}
    focus_keys = [k for k in named if k in evaluations]
    if section == "Training log":
        training_logs(models)
    elif section == efficiency.SECTION:
        # Every checkpoint found, evaluated or not: the chart is about the whole collection.
        efficiency.draw_efficiency(cache.model_points())
    elif not focus_keys:
        st.info("Compute or load metrics first (see above).")
    elif section in ("Accuracy vs N", "Calibration"):
        curves(section, named, evaluations, focus_keys)
    else:
        key = focus_keys[0] if len(focus_keys) == 1 else st.radio(
            "Model", focus_keys, horizontal=True, key="analysis_model", format_func=lambda k: md(Path(k).name))
        if section == compare.SECTION:
            compare_section(named[key], evaluations[key], named, evaluations)
        else:
            one_model(section, named[key], evaluations[key])


if st.session_state.pop("goto_explore", False):
    st.switch_page("screens/explore.py")
page()
