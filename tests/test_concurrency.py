"""A full classroom at once: 20 sessions (and 30 switching checkpoints and uploading) against one real
`streamlit run app/main.py` server.

Each session is a websocket client that speaks the browser's protocol (testkit/streamlit_client.py):
it opens its own session with a link to its own gallery image (``?image=cat_0005``), and the
test checks that the page it gets back shows that image and the prediction that
``model.trace`` computes here for that image, so a result delivered to the wrong session
would fail. The sessions start together (a barrier), so their first script runs race for the
model: the server's log must still show the checkpoint loaded exactly once (``st.cache_resource``
with a per-key lock; app/cache.py logs each load).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import pytest

import vitrm
from app.text import md
from testkit import switching_sessions
from testkit.streamlit_client import ROOT, open_page, serve

GALLERY = ROOT / "app" / "gallery"
SESSIONS = 20
TINY = switching_sessions.tiny_config()
# A model with a confident head (testkit/switching_sessions.py): its answers differ from image to image (the test
# checks that no two chosen images give the same result).
SEED = 3
TIMEOUT = 150     # seconds for one session's run (they share two cores with each other)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classroom-checkpoints")
    vitrm.save(switching_sessions.confident_model(SEED), root / "vitrm-classroom")
    return root / "vitrm-classroom"


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("classroom-server") / "streamlit.log"
    with serve(log, env={"VITRM_CHECKPOINTS": str(checkpoint.parent), "OMP_NUM_THREADS": "1"}) as url:
        yield url, log


def images() -> list[str]:
    """Two gallery images per class: 20 different files."""
    files = list(pd.read_csv(GALLERY / "labels.csv")["file"])
    return [f for i, f in enumerate(files) if i % 10 in (0, 5)][:SESSIONS]


def expected(checkpoint: Path, files: list[str]) -> dict[str, tuple[str, float]]:
    """(top class, its probability in %) at the trained step count, computed here for each file."""
    model = vitrm.load(checkpoint)
    steps = model.config.trained_steps
    out = {}
    for f in files:
        probs = model.trace(model.preprocess(vitrm.load_image(GALLERY / f)), steps=steps).probs[-1, 0]
        top = int(probs.argmax())
        out[f] = (model.config.class_names[top], 100 * float(probs[top]))
    return out


def shown(page, steps: int) -> tuple[str, float]:
    metrics = page.metrics
    label = f"Top class at step {steps}"
    assert label in metrics and "Probability" in metrics, (
        f"no prediction on the page; metrics {metrics}; errors {page.alerts('error') + page.exceptions}")
    return metrics[label], float(metrics["Probability"].rstrip("%"))


def matches(a: tuple[str, float], b: tuple[str, float]) -> bool:
    """Same class, and the same probability to the page's two decimals."""
    return a[0] == b[0] and abs(a[1] - b[1]) <= 0.005 + 1e-6


def test_twenty_sessions_at_once_each_get_their_own_image_and_result(server, checkpoint):
    url, log = server
    files = images()
    assert len(set(files)) == SESSIONS
    want = expected(checkpoint, files)
    # The check can catch a mix-up only if no two images share a result.
    for i, f in enumerate(files):
        for g in files[i + 1:]:
            assert not matches(want[f], want[g]), f"{f} and {g} give the same result; pick other images"
    assert len({c for c, _ in want.values()}) > 1, "every image has the same top class; pick another seed"

    barrier = threading.Barrier(SESSIONS)

    def session(file: str):
        barrier.wait()
        return open_page(url, query=f"image={file.removesuffix('.jpg')}", timeout=TIMEOUT)

    with ThreadPoolExecutor(SESSIONS) as pool:
        pages = dict(zip(files, pool.map(session, files)))

    steps = TINY.trained_steps
    for f, page in pages.items():
        assert page.status == "success", f"{f}: {page.compile_error}"
        assert not page.exceptions, f"{f}: {page.exceptions}"
        # The page carries markdown source, where a file name is escaped (app.text.md): "cat\\_0005\\.jpg".
        assert f"{md(f)}: original" in page.text, f"{f}: the page shows another image:\n{page.text[:500]}"
        got = shown(page, steps)
        assert matches(got, want[f]), f"{f}: the page shows {got}, model.trace gives {want[f]}"
        others = [g for g in files if g != f and matches(got, want[g])]
        assert not others, f"{f}: the page shows the result of {others}"
        assert page.query_string == f"image={f.removesuffix('.jpg')}"
    assert len({p.session_id for p in pages.values()}) == SESSIONS, "sessions were shared"

    loads = [line for line in log.read_text().splitlines() if "loaded checkpoint" in line]
    assert len(loads) == 1 and str(checkpoint) in loads[0], f"expected one load of {checkpoint}, got {loads}"
    print(f"\n{SESSIONS} sessions, run seconds: min {min(p.seconds for p in pages.values()):.2f}, "
          f"max {max(p.seconds for p in pages.values()):.2f}; {loads[0]}")


def test_a_link_to_an_unknown_image_explains_and_the_page_still_works(server):
    url, log = server
    for bad in ("not-a-picture", "", "cat_0003.png", "../../etc/passwd", "`**x**`" + "y" * 500):
        page = open_page(url, query=urlencode({"image": bad}), timeout=TIMEOUT)
        assert page.status == "success" and not page.exceptions, (bad, page.exceptions)
        errors = page.alerts("error")
        assert len(errors) == 1 and "no image of that name" in errors[0] and "?image=cat_0003" in errors[0], errors
        assert len(errors[0]) < 400
        assert "Top class at step" in page.text, "the gallery is not shown after the message"


def test_a_link_with_the_file_extension_opens_the_image(server):
    url, _ = server
    page = open_page(url, query="image=truck_0007.jpg", timeout=TIMEOUT)
    assert f"{md('truck_0007.jpg')}: original" in page.text and not page.alerts("error")
    assert page.query_string == "image=truck_0007"


# --------------------------------------------------------------------------- 30 sessions switching and uploading

SWITCHING = 30
LOAD_TARGET = 2.5       # seconds: docs/performance.md's load target (p95 of a full analysis, twenty sessions at once)


def load_target() -> float:
    """LOAD_TARGET, measured on the otherwise idle machine, stretched by how busy the machine is right now with
    work that is not this test's (the other engineers' tests and the training runs share its two cores): a
    load average of 6 per core makes every page about that much slower, whatever the app does."""
    import os
    return LOAD_TARGET * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> Path:
    """A checkpoints root with two tiny models that answer differently (confident, seeded heads)."""
    return switching_sessions.two_models(tmp_path_factory.mktemp("switching-checkpoints"))


def test_thirty_sessions_switching_checkpoints_and_uploading_at_once(two_models, tmp_path):
    models = {name: vitrm.load(two_models / name) for name in switching_sessions.SEEDS}
    uploads = {switching_sessions.upload_name(i): switching_sessions.upload_png(i) for i in range(SWITCHING)}

    def answer(name: str, data: bytes) -> tuple[str, float]:
        model = models[name]
        probs = model.trace(model.preprocess(vitrm.load_image(data)), steps=TINY.trained_steps).probs[-1, 0]
        top = int(probs.argmax())
        return model.config.class_names[top], 100 * float(probs[top])

    want = {(m, f): answer(m, data) for m in models for f, data in uploads.items()}
    barrier = threading.Barrier(SWITCHING)
    done = threading.Event()

    def checked(page, what: str):
        assert page.status == "success", f"{what}: {page.compile_error}"
        assert not page.exceptions, f"{what}: {page.exceptions}"
        return page

    def session(i: int) -> list[str]:
        """Session i's walk (testkit/switching_sessions.py), every page checked as it arrives; then the two pages
        that show its upload, on the second model and back on the first: its own image and that model's answer."""
        file = switching_sessions.upload_name(i)
        problems = []
        for visit in switching_sessions.switching_session(url, i, barrier, TIMEOUT, check=checked):
            model, page = visit.upload_on, visit.page
            if model is None:
                continue
            if f"{md(file)}: original" not in page.text:
                problems.append(f"{file} on {model}: its own upload is not shown")
            others = [g for g in uploads if g != file and md(g) in page.text]
            if others:
                problems.append(f"{file} on {model}: the page shows another session's upload {others}")
            got = shown(page, TINY.trained_steps)
            if not matches(got, want[(model, file)]):
                problems.append(f"{file} on {model}: shows {got}, model.trace gives {want[(model, file)]}")
        return problems

    def probe() -> list[float]:
        """A new visitor's default page, again and again while the thirty sessions work."""
        seconds = []
        while not done.is_set():
            page = open_page(url, timeout=TIMEOUT)
            assert page.status == "success" and not page.exceptions, page.exceptions
            seconds.append(page.seconds)
        return seconds

    log = tmp_path / "streamlit.log"
    with serve(log, env={"VITRM_CHECKPOINTS": str(two_models), "OMP_NUM_THREADS": "1"}) as url:
        checked(open_page(url, timeout=TIMEOUT), "a warm-up page")       # the default page's trace is cached
        alone = sorted(checked(open_page(url, timeout=TIMEOUT), "a page alone").seconds for _ in range(5))
        target = load_target()
        with ThreadPoolExecutor(SWITCHING + 1) as pool:
            waits = pool.submit(probe)
            results = list(pool.map(session, range(SWITCHING)))
            done.set()
            waits = waits.result()
    problems = [p for r in results for p in r]
    assert not problems, "\n".join(problems[:10])
    waits.sort()
    p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))]
    print(f"\n{SWITCHING} sessions switching and uploading: a new visitor's default page took "
          f"{waits[0]:.2f}-{waits[-1]:.2f} s over {len(waits)} visits (p95 {p95:.2f} s; alone, before: median "
          f"{alone[2]:.2f} s); target {target:.1f} s")
    # The wait is reported, not asserted: a timing belongs to a benchmark (bench/thirty_sessions.py, the same workload
    # beside another build; docs/reliability.md, Many sessions at once: the page costs the server 0.05 s of CPU, the
    # rest is its turn behind the thirty). What must hold is asserted above: every session saw its own image and the
    # right answer, and no page raised.
    assert waits, "the new visitor's default page never answered"
    loads = [line for line in log.read_text().splitlines() if "loaded checkpoint" in line]
    assert len(loads) == 2, loads
