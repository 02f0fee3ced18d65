"""Thirty sessions switching checkpoints and uploading: the workload tests/test_concurrency.py checks and
bench/thirty_sessions.py times, written once so that the two keep running the same thing.

``two_models(root)`` writes two tiny models that answer differently (``model-a``, ``model-b``); ``upload_png(i)``
is session ``i``'s own image, named ``upload_name(i)``; ``switching_session`` walks one session through the pages
over the websocket (testkit/streamlit_client.py): the default page, the second model, the Upload source, its own
image uploaded (shown on the second model), then the first model again.

torch and vitrm are imported inside the functions: a bench's ``--help`` does not wait for them.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from testkit.streamlit_client import Page, Session

FIRST, SECOND = "model-a", "model-b"
SEEDS = {FIRST: 3, SECOND: 4}
# An untrained model is nearly uniform (every class about 10%), so two images could show the same rounded result.
# Its class head is scaled up so that its answers are confident and differ from image to image.
HEAD_SCALE = 10.0


def tiny_config():
    import vitrm
    return vitrm.ViTRMConfig(dim=32, heads=2, layers=2, trained_steps=2, latent_updates=1)


def confident_model(seed: int):
    """A tiny untrained ViTRM, seeded, with its class head scaled up (HEAD_SCALE) and no bias."""
    import torch

    import vitrm
    torch.manual_seed(seed)
    model = vitrm.ViTRM(tiny_config())
    with torch.no_grad():
        model.head.weight.mul_(HEAD_SCALE)
        model.head.bias.zero_()
    return model


def two_models(root: Path) -> Path:
    """A checkpoints root holding FIRST and SECOND: two confident models with different seeds."""
    import vitrm
    for name, seed in SEEDS.items():
        vitrm.save(confident_model(seed), root / name)
    return root


def upload_name(index: int) -> str:
    return f"session-{index:02d}.png"


def upload_png(index: int) -> bytes:
    """A different 48x40 noise image for each session."""
    import numpy as np
    from PIL import Image
    pixels = np.random.default_rng(1000 + index).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class Visit(NamedTuple):
    what: str                   # what the page is, for a message: "first page", "switching to model-b", ...
    page: Page
    upload_on: str | None       # the model the session's own upload is shown on; None before it is uploaded


def switching_session(url: str, index: int, barrier: threading.Barrier, timeout: float,
                      check: Callable[[Page, str], object] = lambda page, what: None) -> list[Visit]:
    """Session ``index``'s walk, started once every session waits at ``barrier``; its pages in order.

    ``check(page, what)`` sees each page as it arrives, before the next step looks for a widget on it: a check
    that raises stops the walk there, with its own message rather than a missing widget's."""
    from streamlit.proto.Common_pb2 import StringArray
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    visits: list[Visit] = []

    def arrived(page: Page, what: str, upload_on: str | None = None) -> Page:
        check(page, what)
        visits.append(Visit(what, page, upload_on))
        return page

    def choose(s: Session, page: Page, name: str, upload_on: str | None = None) -> Page:
        widget = next(e.proto.id for e in page.elements if e.kind == "multiselect")
        s.set_widget(WidgetState(id=widget, string_array_value=StringArray(data=[name])))
        return arrived(s.run(), f"switching to {name}", upload_on)

    file = upload_name(index)
    with Session(url, timeout) as s:
        barrier.wait()
        page = arrived(s.run(), "first page")
        page = choose(s, page, SECOND)
        radio = next(e.proto.id for e in page.elements if e.kind == "radio" and e.proto.label == "Image source")
        s.set_widget(Session.string_state(radio, "Upload"))
        page = arrived(s.run(), "upload page")
        uploader = next(e.proto.id for e in page.elements if e.kind == "file_uploader")
        s.set_widget(Session.uploader_state(uploader, [s.upload(file, upload_png(index), "image/png")]))
        page = arrived(s.run(), f"{file} on {SECOND}", upload_on=SECOND)
        choose(s, page, FIRST, upload_on=FIRST)
    return visits
