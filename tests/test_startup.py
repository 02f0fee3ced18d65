"""A fresh server's first page: something shows at once, and the browser loads the page's code while PyTorch imports.

A fresh server's first page run imports PyTorch, pandas and Plotly (seconds). Meanwhile it draws a note and, hidden,
one element of each kind the page will draw (app/startup.py): the browser fetches each kind's code only when it first
meets one, so this moves those fetches under the imports. These tests run a real `streamlit run app/main.py` on the
shipped checkpoints and read what its first run sends; and one runs the first page in a process of its own to check
that it imports no torchvision (1.3 s of CPU more).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.startup import WARM_UP
from testkit.streamlit_client import ROOT, open_page, serve

# Kinds whose code is in the frontend's first bundle, or that have none to load.
TEXT_KINDS = {"markdown", "heading", "empty", "html"}


@pytest.fixture(scope="module")
def first_pages(tmp_path_factory):
    """The first run of a fresh server, and a second session's run on the same server."""
    log = tmp_path_factory.mktemp("startup") / "streamlit.log"
    with serve(log, env={"OMP_NUM_THREADS": "1"}) as url:
        yield open_page(url), open_page(url)


def startup_part(page) -> list:
    """What the run sent before the sidebar's first element: the startup note and the hidden elements."""
    first_sidebar = next(i for i, e in enumerate(page.sent) if e.path[0] == 1)
    return page.sent[:first_sidebar]


def test_every_kind_of_element_on_the_first_page_is_sent_before_the_page_itself(first_pages):
    first, _ = first_pages
    assert first.status == "success" and "Top class at step" in first.text
    sent_early = {e.kind for e in startup_part(first)}
    needed = {e.kind for e in first.elements} - TEXT_KINDS
    assert needed <= sent_early, f"add these kinds to app/startup.py's hidden elements: {needed - sent_early}"


def test_the_startup_note_and_the_hidden_elements_are_gone_from_the_drawn_page(first_pages):
    first, _ = first_pages
    early = startup_part(first)
    assert any(e.kind == "html" and WARM_UP in e.proto.body for e in early)      # the style that hides them
    assert any("Starting" in e.text for e in early)
    assert not any("Starting" in e.text or "warm-up" in e.text for e in first.elements)
    # Nothing is left inside the startup slot but the empty element that replaced it.
    slot = early[0].path[:2]
    assert [e.kind for e in first.elements if e.path[:2] == slot] == ["empty"]


def test_a_later_session_gets_the_page_alone(first_pages):
    first, later = first_pages
    assert later.status == "success"
    assert not any("Starting" in e.text or "warm-up" in e.text for e in later.sent)
    assert [e.text for e in later.elements if e.kind == "metric"] == \
        [e.text for e in first.elements if e.kind == "metric"]


# Importing torchvision imports torch._dynamo, sympy and triton with it: 1.3 s of CPU on the 2-core machine, as much
# again as PyTorch itself. The first page needs none of it (vitrm.data and vitrm.edits import it where it is used);
# an import of it at a module's top cost the cold start about 1.2 s (docs/performance.md, Cold start).
FIRST_PAGE_MODULES = """
import os, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(os.path.join(os.getcwd(), "app", "main.py"), default_timeout=300).run()
assert not at.exception and "Top class at step" in " ".join(m.label for m in at.metric), at.exception
print(*sorted({m.split(".")[0] for m in sys.modules} & {"torchvision", "sympy", "triton"}
             | {"torch._dynamo"} & set(sys.modules)))
"""


def test_the_first_page_imports_no_torchvision():
    done = subprocess.run([sys.executable, "-c", FIRST_PAGE_MODULES], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == []
