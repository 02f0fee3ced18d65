"""A fresh server's first page: the imports start before anyone visits, something shows at once, and the browser
loads the page's code meanwhile.

A new server starts importing PyTorch, pandas and Plotly (seconds) as soon as it listens (app/startup.py). A first
page that arrives before they are done draws a note and, hidden, one element of each kind the page will draw: the
browser fetches each kind's code only when it first meets one, so this moves those fetches under the imports. These
tests run a real `streamlit run app/main.py` on the shipped checkpoints and read what its first run sends.
"""

from __future__ import annotations

import ast
import importlib.util
import time
from pathlib import Path

import pytest

from app.startup import FIRST_PAGE_IMPORTS, WARM_UP
from testkit.streamlit_client import open_page, serve

SCRIPT = Path(__file__).resolve().parents[1] / "app" / "script.py"

# Kinds whose code is in the frontend's first bundle, or that have none to load.
TEXT_KINDS = {"markdown", "heading", "empty", "html"}


@pytest.fixture(scope="module")
def first_pages(tmp_path_factory):
    """The first run of a fresh server, and a second session's run on the same server. The first is opened as soon
    as the server answers, seconds before its own imports can be done: it waits for them."""
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


def test_a_fresh_server_imports_the_first_pages_modules_before_anyone_visits(tmp_path):
    log = tmp_path / "streamlit.log"
    with serve(log, env={"OMP_NUM_THREADS": "1"}):
        deadline = time.monotonic() + 60
        while "imported the app's modules at server start" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)


def module_imported(module: str, name: str) -> str:
    """The module that ``from module import name`` imports: "from app import session", app.session; "from vitrm
    import CheckpointError", vitrm."""
    is_package = hasattr(importlib.import_module(module), "__path__")
    return f"{module}.{name}" if is_package and importlib.util.find_spec(f"{module}.{name}") else module


def test_the_server_imports_every_module_the_script_waits_for():
    """What app/script.py imports inside ``starting()`` must be among what the server imports at its start:
    anything else would be imported on the first page's critical path, after the wait."""
    tree = ast.parse(SCRIPT.read_text())
    block = next(node for node in ast.walk(tree) if isinstance(node, ast.With)
                 and ast.unparse(node.items[0].context_expr) == "starting()")
    imported = set()
    for node in block.body:
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {module_imported(node.module, alias.name) for alias in node.names}
    assert imported and imported <= set(FIRST_PAGE_IMPORTS), imported - set(FIRST_PAGE_IMPORTS)
