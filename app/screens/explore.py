"""Page: explore one image through the recursion, step by step."""

from __future__ import annotations

import time
from collections.abc import Mapping

import streamlit as st

from app import cache, checkpoints, derive, glossary, inputs, ood_check, reliability, session, summaries
from app.text import MAX_MESSAGE, md, plain
from app.views import (
    attention,
    attribution,
    classroom,
    honesty,
    input_view,
    list_nav,
    model_card,
    scrubber,
    state,
    what_if,
)
from vitrm import ATTRIBUTION_METHODS as METHODS

PLAY_INTERVAL = scrubber.PLAY_INTERVAL
ROW_STEPS = 8            # the attribution row shows at most this many steps
VIEWS = ["Scrubber", "Evolving state", "Attention", "Attribution"]


# --------------------------------------------------------------------------- step controls and play
#
# Everything that depends on the step (the controls, the answer, the bars, the step views) is one
# fragment, `step_part`: a slider move or a Play tick reruns only it, never the image decoding, the
# trace or the model card above it, nor the scrubber's charts over all steps below it (the browser
# redraws every chart whose figure changed, 0.1-0.25 s each here, so those carry no moving step marker).
# Changing N inside the fragment reruns the whole page, so that the part below follows it. Play is the
# fragment's own timer (run_every): the timer is set when a full run draws the fragment, so starting or
# stopping Play costs one full run.
#
# While playing, the step lives in PLAY_AT, which no widget owns, and no slider is drawn: the step is
# shown once, in the playing line (scrubber.draw_playing), with the answer where the view has one. Two
# elements that both show the step cannot be kept in step: Streamlit sends each element as a message of
# its own, and the browser now and then painted the new slider beside the previous step's answer (1 in 70
# to 6 in 87 step changes, bench/browser_speed.py). One element is drawn whole. A timer's request carries the
# widget values the browser holds, and on a busy machine those can be a step or more behind what the
# server last drew: had Play written the keyed slider's value (or a Play toggle's), such a stale echo
# would come back as a user's change and move the step backwards, or start Play again after it stopped.
# So Play is a button (a click is never echoed) and the keyed slider returns, at PLAY_AT, only when Play
# stops.

PLAYING = "playing"               # whether Play is on (no widget's key)
PLAY_AT = "play_at"               # the step Play shows
PLAY_TIMER = "play_timer"         # whether the last full run gave step_part Play's timer
LAST_TICK = "last_tick"           # time.monotonic() of Play's last step


def _press_play(step_key: str, trained: int) -> None:
    if st.session_state.get(PLAYING):
        st.session_state[PLAYING] = False
        st.session_state[step_key] = st.session_state.get(PLAY_AT, 1)
        return
    step = st.session_state.get(step_key, 1)
    # Play tells the story from step 1 to the trained N (then the extra steps), unless stopped partway into it:
    # a page opens at the trained N, and playing on from there showed only the extra steps, where little changes.
    st.session_state[PLAY_AT] = step if 1 < step < trained else 1
    st.session_state[PLAYING] = True
    st.session_state[LAST_TICK] = time.monotonic()


def _play_tick(step_key: str, n: int) -> bool:
    """While playing, one step further per PLAY_INTERVAL; at N, stop there (the keyed slider takes the step).
    Whether this run shows Play: the run that reaches N still does (its playing line at N), and the full run
    that stopping starts draws the slider at N, so the step shown never goes back while the page changes over.

    The timer's runs are the fragment's only runs while playing, bar a click elsewhere in it; one that
    comes early (a click) does not advance, and a late one advances by one step only, so Play never
    skips a step, however loaded the machine.
    """
    if not st.session_state.get(PLAYING):
        return False
    at = min(int(st.session_state.get(PLAY_AT, 1)), n)
    now = time.monotonic()
    if now - st.session_state.get(LAST_TICK, 0.0) >= PLAY_INTERVAL * 0.6 and at < n:
        st.session_state[LAST_TICK] = now
        at += 1
    st.session_state[PLAY_AT] = at
    if at >= n:
        st.session_state[PLAYING] = False
        st.session_state[step_key] = at
    return True


def steps_to_run(model: session.LoadedModel) -> int:
    """The session's N for ``model`` (1 when it is not recursive), its step and N set to their defaults
    on first sight: N twice the trained count, the step at the trained count."""
    if not model.recursive:
        return 1
    trained = model.config.trained_steps
    st.session_state.setdefault(f"n::{model.key}", model.default_steps)
    st.session_state.setdefault(f"step::{model.key}", trained)
    return int(st.session_state[f"n::{model.key}"])


def step_state(model: session.LoadedModel) -> tuple[int, int, bool]:
    """(N, selected step, whether Play is showing) as this run shows them, Play's tick applied; draws nothing.

    Read before anything is drawn, so that a view can prepare its figures first and then draw the slider and
    the answer back to back (``draw_step_controls``): drawn apart, with work between them, the browser can
    paint the new slider beside the old answer, a stale frame while Play runs. A keyed widget's value is its
    session-state entry, so what this reads is what the widgets will show.
    """
    if not model.recursive:
        return 1, 1, False
    n_key, step_key = f"n::{model.key}", f"step::{model.key}"
    n = max(1, min(steps_to_run(model), model.max_steps))
    if st.session_state[n_key] != n:
        st.session_state[n_key] = n
    st.session_state[step_key] = max(1, min(int(st.session_state[step_key]), n))
    playing = _play_tick(step_key, n)
    if n == 1:
        st.session_state[PLAYING] = False
        return 1, 1, False
    if playing:
        return n, min(int(st.session_state[PLAY_AT]), n), True
    return n, int(st.session_state[step_key]), False


def draw_step_controls(model: session.LoadedModel, n: int, step: int, playing: bool,
                       step_shown_below: bool = False) -> None:
    """N, the step slider and Play, showing ``step_state``'s (N, step, playing); N up to 4x the trained count.

    While playing, the slider's place holds the playing line, or, when ``step_shown_below`` (the view draws
    its own playing line, with the answer, under the controls), a note that does not change with the step.
    """
    if not model.recursive:
        st.info(f"{md(model.name)} is not recursive: it answers in a single step, so there is nothing to scrub.")
        return
    trained = model.config.trained_steps
    n_key, step_key = f"n::{model.key}", f"step::{model.key}"
    # Play's column holds "Stop" and its icon whole in classroom mode at 1366 px (tests/test_browser_classroom.py).
    c1, c2, c3 = st.columns([1.5, 5, 1.5])
    c1.number_input("Steps (N)", min_value=1, max_value=model.max_steps, key=n_key,
                    help=f"How many recursion steps to run. Trained with {trained}; up to {model.max_steps} "
                    "to see how it extrapolates.")
    if n == 1:
        c2.caption("One step: raise N to scrub through the recursion.")
        return
    # Material icons: Streamlit ships their font, while "⏸" is missing from many a system's fonts (headless
    # Chromium on Debian drew a box).
    c3.button("Stop" if playing else "Play", icon=":material/stop:" if playing else ":material/play_arrow:",
              key="play_button", on_click=_press_play, args=(step_key, trained),
              help=f"Animate the steps from step 1, one every {PLAY_INTERVAL} s: the {trained} it was trained "
                   "with, then the extra ones.")
    # The slider last, so that the answer drawn next follows it at once.
    if playing:
        with c2:
            if step_shown_below:
                st.caption(f"Playing, one step every {PLAY_INTERVAL} s. Press Stop to take the slider back.")
            else:
                scrubber.draw_playing(step, n, trained=trained)
    else:
        c2.slider("Recursion step", min_value=1, max_value=n, key=step_key,
                  help="Moving the slider only reads the stored trace: no model work.")


def step_fragment(body, *args) -> None:
    """Draw ``body(*args)`` as the page's step-dependent fragment, with Play's timer while playing."""
    playing = bool(st.session_state.get(PLAYING))
    st.session_state[PLAY_TIMER] = playing

    def part(*args) -> None:
        body(*args)
        if bool(st.session_state.get(PLAYING)) != st.session_state.get(PLAY_TIMER):
            st.rerun()        # Play started or stopped: a full run sets or clears the timer

    part.__qualname__ = part.__name__ = f"step_part_{body.__name__}"
    st.fragment(part, run_every=PLAY_INTERVAL if playing else None)(*args)


# --------------------------------------------------------------------------- sections

def upload_summary(model: session.LoadedModel, uploads: list[cache.PreparedImage]) -> None:
    rows = []
    size = model.config.image_size
    for p in uploads:
        if not p.ok:
            rows.append({"file": plain(p.name), "prediction": "", "probability": "",
                         "message": plain(p.error, MAX_MESSAGE)})
            continue
        run = cache.run_image(model.key, model.mtime, p.digest, cache.traced_steps(model.config, steps_to_run(model)),
                              p.pixels[size])
        at = min(model.config.trained_steps, run.steps) - 1
        top = int(run.probs[at].argmax())
        rows.append({"file": plain(p.name), "prediction": plain(run.class_names[top]),
                     "probability": f"{100 * run.probs[at, top]:.2f}%",
                     "message": f"classified at the trained N={at + 1}"})
    refused = sum(not p.ok for p in uploads)
    if refused:
        st.warning(f"{refused} of {len(uploads)} files could not be used; the table says why. The others work.")
    input_view.draw_upload_summary(rows)


def model_answers(models: list[session.LoadedModel], focus: session.LoadedModel,
                  image: cache.PreparedImage) -> list[dict]:
    """Every loaded model's answer on ``image`` at its own trained N (a model is judged at the step count it was
    trained with, not at the focus model's step), with its own out-of-classes flag; the focus model first."""
    rows = []
    for m in sorted(models, key=lambda m: m.key != focus.key):
        run = cache.run_image(m.key, m.mtime, image.digest, cache.traced_steps(m.config, steps_to_run(m)),
                              image.pixels[m.config.image_size])
        at = min(m.config.trained_steps, run.steps) if m.recursive else 1
        top = int(run.probs[at - 1].argmax())
        score, facts, _ = ood_check.check(m.key, m.mtime, image.digest, run.trace)
        rows.append({"name": m.name, "step": at, "top": run.class_names[top],
                     "probability": f"{100 * run.probs[at - 1, top]:.1f}%",
                     "unusual": honesty.is_unusual(score, facts)})
    return rows


def attribution_section(model: session.LoadedModel, image: cache.PreparedImage, run: cache.ImageRun,
                        n: int, step: int) -> None:
    names = run.class_names
    st.session_state.setdefault("attr_methods", list(METHODS))
    # Pills, not a multiselect (its chips cut a name short: "Occlu…"), on a row of their own: a row of pills does
    # not wrap, and in a column beside the other controls the last one was cut off at 1366-1400 px
    # (tests/test_browser_classroom.py).
    methods = st.pills("Methods", list(METHODS), selection_mode="multi", format_func=METHODS.get,
                       key="attr_methods", help=glossary.help_for(*METHODS.values())) or []
    c2, c3 = st.columns([3, 2])
    choice = c2.selectbox("Explain which class", ["the class predicted at this step"] + list(names),
                          key="attr_target", format_func=plain)
    follow = c3.toggle("Recompute when the step changes", key="attr_follow",
                       help="Off: the slider never triggers model work; press the button instead.")
    target = None if choice not in names else names.index(choice)
    pixels = image.pixels[model.config.image_size]
    done = st.session_state.setdefault("attr_done", set())
    wanted = [(model.key, image.digest, step, target, m) for m in methods]
    if st.button(f"Compute attributions at step {step}", type="primary") or follow:
        done.update(wanted)
    results = []
    for key in wanted:
        if key not in done:
            continue
        with st.spinner(f"Computing {METHODS[key[-1]]} at step {step}…", show_time=True):
            results.append(cache.run_attribution(model.key, model.mtime, image.digest, key[-1], step, target, pixels))
    if results:
        attribution.draw_attributions(results, pixels, names, step)
    else:
        st.caption("Attributions run the model backwards through all the steps, so they are computed on request.")

    st.markdown("**One method across steps**")
    c1, c2 = st.columns([3, 2])
    method = c1.selectbox("Method for the row", list(METHODS), format_func=METHODS.get, key="row_method",
                          help=glossary.help_for(*METHODS.values()))
    steps = attribution.row_steps(n, model.config.trained_steps, ROW_STEPS)
    row_target = target if target is not None else int(run.probs[step - 1].argmax())
    row_key = (model.key, image.digest, method, row_target, tuple(steps))
    if c2.button(f"Row for {md(names[row_target])} at steps {', '.join(map(str, steps))}"):
        done.add(row_key)
    if row_key in done:
        row = []
        for s in steps:
            with st.spinner(f"Computing {METHODS[method]} at step {s}…", show_time=True):
                row.append(cache.run_attribution(model.key, model.mtime, image.digest, method, s, row_target, pixels))
        attribution.draw_attribution_row(row, pixels, names)


# --------------------------------------------------------------------------- the step-dependent part

def classroom_part(models: list[session.LoadedModel], model: session.LoadedModel, image: cache.PreparedImage,
                   run: cache.ImageRun, why: str | None) -> None:
    n, step, playing = step_state(model)
    if n > run.steps:
        st.rerun()        # N went past the trace: the full run traces further
    unusual = ood_check.check(model.key, model.mtime, image.digest, run.trace)
    answers = model_answers(models, model, image)
    classroom.draw(image.pixels[model.config.image_size], run.probs[:n],
                   None if run.trace.halt is None else run.trace.halt[:n, 0].numpy(),
                   run.class_names, image.label, step, model.config.trained_steps,
                   lambda: draw_step_controls(model, n, step, playing, True), why, playing,
                   beside_answer=lambda: honesty.draw_unusual(*unusual, len(run.class_names), compact=True),
                   under_image=lambda: scrubber.draw_model_answers(answers))


def explore_part(models: list[session.LoadedModel], model: session.LoadedModel, image: cache.PreparedImage,
                 run: cache.ImageRun, view: str, drawn_n: int) -> None:
    """The step controls and what ``view`` shows at the chosen step; ``drawn_n``: the N of the full run
    that drew this fragment (what is drawn below it, outside the fragment, covers N steps)."""
    n, step, playing = step_state(model)
    if n != drawn_n:
        st.rerun()        # N changed: the step-independent part below the fragment follows it
    pixels = image.pixels[model.config.image_size]
    probs = run.probs[:n]
    if view == "Scrubber":
        notes = []
        if run.trace.halt is not None:
            evaluated = model.files.predictions
            value = float(run.trace.halt[step - 1, 0])
            notes.append(honesty.halting_note(value, step, None if evaluated is None else
                                              reliability.at(evaluated, step, value)))
        answers = model_answers(models, model, image)
        scrubber.draw_step(probs, step, run.class_names, image.label, notes,
                           controls=lambda: draw_step_controls(model, n, step, playing, True), playing=playing,
                           after_answer=lambda: scrubber.draw_model_answers(answers))
        return
    draw_step_controls(model, n, step, playing)
    if view == "Evolving state":
        maps = cache.state_maps(model.key, model.mtime, image.digest, run.steps, pixels)
        state.draw_state(pixels, maps.z_norm, maps.z_change, maps.z_rgb, maps.y_points, maps.y_arrows, maps.y_ratio,
                         probs, step, run.class_names)
    elif view == "Attention":
        if run.trace.attention is None:
            st.info(f"{md(model.name)} is not a ViTRM, so its trace has no recursion attention to show.")
        else:
            attention.draw_attention(run.trace.attention, pixels, run.grid, step, key=model.key)
    else:
        attribution_section(model, image, run, n, step)


def what_if_section(model: session.LoadedModel, image: cache.PreparedImage, run: cache.ImageRun) -> None:
    """The image in focus, edited (app.views.what_if), traced by the same model to the same steps as the original."""
    n = steps_to_run(model)

    def trace(edited, key: str):
        return cache.run_image(model.key, model.mtime, f"{image.digest}|{key}", run.steps, edited).probs[:n]

    what_if.draw(image.pixels[model.config.image_size], run.probs[:n], run.class_names, run.grid,
                 model.config.trained_steps, trace)


# --------------------------------------------------------------------------- page

def demo_marks(model: session.LoadedModel) -> Mapping[str, str]:
    if model.files.predictions is None or not model.recursive:
        return {}
    files = tuple(inputs.gallery_table()["file"])
    # Within the trained N: the story Play tells, and the step the page opens at.
    return classroom.demo_marks(model.key, model.mtime, files, model.config.trained_steps,
                                model.files.predictions)


models = session.require_models()
teaching = bool(st.session_state.get(classroom.TOGGLE))
# Classroom mode is a presenter's view: the sidebar closes (unless the user has opened or closed it by hand, which
# the browser remembers), and the model and image controls fold into one expander on the title's row, so that the
# image, the answer, the bars, the sentence and Play fit a 1366x625 window (tests/test_browser_classroom.py).
st.set_page_config(initial_sidebar_state="collapsed" if teaching else "auto")
title, toggle, terms = st.columns([5.4, 2, 1.6], vertical_alignment="center" if teaching else "bottom")
if teaching:
    controls = title.expander("Model and image", icon=":material/tune:")
else:
    title.header("Explore an image")     # "Glossary" whole at 1366 px beside it
    controls = st.container()
with toggle:
    teaching = classroom.draw_toggle()
with terms:
    glossary.draw()
with controls:
    # The model and the source on one row: two rows pushed the answer below a 1366x768 screen.
    model_slot, source_slot = st.columns(2) if len(models) > 1 else (st.container(), None)
    with model_slot:
        model = session.focus(models)
    marks = demo_marks(model)
    image, uploads = inputs.choose_image(tuple(sorted({m.config.image_size for m in models})), marks,
                                         checkpoints.data_root((model.files.metrics or {}).get("data")), source_slot)
    list_nav.draw()
    if st.session_state.get("source") in ("Upload", "Camera"):
        honesty.draw_known_classes(model.name, model.config.class_names)
    if uploads:
        upload_summary(model, uploads)
if image is None:
    st.info("Upload an image, take a photo, or pick one from the gallery.")
    st.stop()
if not image.ok:
    st.error(md(image.error, MAX_MESSAGE))
    st.stop()

pixels = image.pixels[model.config.image_size]
run = cache.run_image(model.key, model.mtime, image.digest, cache.traced_steps(model.config, steps_to_run(model)),
                      pixels)
if teaching:
    step_fragment(classroom_part, models, model, image, run,
                  marks.get(image.name) if st.session_state.get("source") == "Gallery" else None)
    st.stop()
beside_image = input_view.draw_input_pair(image.name, image.thumbnail, image.original_size, pixels, image.label)
with beside_image:        # the views' radio: a row of its own pushed the answer below a 1366x768 screen
    view = st.radio("View", VIEWS, key="explore_view", horizontal=True, label_visibility="collapsed",
                    help=glossary.help_for(*VIEWS))
n = steps_to_run(model)
step_fragment(explore_part, models, model, image, run, view, n)
# Under the answer it qualifies ("This answer is the closest of the classes..."), its rule in full.
honesty.draw_unusual(*ood_check.check(model.key, model.mtime, image.digest, run.trace), len(run.class_names))
if view == "Scrubber":
    scrubber.draw_overview(lambda run=run, n=n: derive.per_step_table(run.trace, 0, run.class_names).head(n),
                           (run.trace.y_update_norm()[:n, 0].numpy(), run.trace.z_update_norm()[:n, 0].numpy()),
                           run.probs[:n], None if run.trace.halt is None else run.trace.halt[:n, 0].numpy(),
                           run.class_names, model.config.trained_steps,
                           file_stem=plain(f"{model.name}-{image.name.rsplit('.', 1)[0]}").replace("/", "-"))
# Below the views, not above: between the image and the answer it pushed the answer below a 768 px screen.
# Drawn only once opened, as counting the compute takes seconds the first time. One label for every model (the
# card names it): a label of its own would make a new expander, closed, whenever the focus changes.
card_box = st.expander("Model card", key=model_card.OPEN, on_change="rerun")
if card_box.open:
    with card_box:
        shown = [*models, *session.baseline_models({m.key for m in models})]
        cards = [m.card | {"flops_per_image": cache.flops_per_image(m.key, m.mtime)} for m in shown]
        model_card.draw_model_card(model.card | {"flops_per_image": cache.flops_per_image(model.key, model.mtime)},
                                   summaries.comparison_table(cards))
# What if: drawn, and the edited image traced, only once opened (the first page pays nothing for it).
what_if_box = st.expander("What if: edit this image and watch its steps part", key=what_if.OPEN, on_change="rerun")
if what_if_box.open:
    with what_if_box:
        what_if_section(model, image, run)
