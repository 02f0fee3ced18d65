"""Links to dataset images: ``?dataset=test/<class>/<file>`` opens a test image under the focus model's data
directory, the address follows the dataset image on screen, and nothing outside that directory opens."""

from __future__ import annotations

import json
from pathlib import Path

from test_app import app, lab, metrics, run, select_models  # noqa: F401 (fixtures)


def data_root(lab: Path) -> Path:
    return Path(json.loads((lab / "vitrm-tiny" / "metrics.json").read_text())["data"].split(":", 1)[1])


def test_a_dataset_link_opens_that_test_image_and_the_address_names_it(app, lab):
    relative = next(p for p in sorted((data_root(lab) / "test" / "dog").iterdir())).relative_to(data_root(lab))
    at = select_models(run(app), lab, "vitrm-tiny")
    at.query_params["dataset"] = relative.as_posix()
    run(at)
    assert at.radio(key="source").value == "Dataset image"
    assert "True class: **dog**" in [c.value for c in at.caption]
    assert at.query_params["dataset"] == [relative.as_posix()] or at.query_params["dataset"] == relative.as_posix()


def test_a_dataset_link_outside_the_data_directory_is_refused_with_a_message(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.query_params["dataset"] = "../../../../etc/passwd"
    run(at)
    assert at.radio(key="source").value == "Gallery"
    assert any("not an image file under the focus model's data directory" in e.value for e in at.error)


def test_an_upload_says_it_cannot_be_linked(app, lab):
    at = select_models(run(app), lab, "vitrm-tiny")
    at.radio(key="source").set_value("Upload")
    run(at)
    assert any("cannot be linked" in c.value for c in at.caption)
