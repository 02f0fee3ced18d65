"""The app on hostile content (AppTest): every outside string shows as text, paths stay confined,
damaged side files cost only their views, and a session's uploads stay within its budget.

A checkpoint is planted whose directory name, class names, metrics.json (data, data note, class
names), predictions.csv (label names) and the link and upload names of the session all carry
markup: markdown links, images and emphasis, HTML, newlines, backticks, LaTeX, Streamlit's colour
directive and a very long string. Every page and view is opened; then every string the app sent
that Streamlit renders as markdown, and every string in every Plotly figure, is checked for the raw
markup. The real browser's side of the same rule is tests/test_browser_hostile.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest
from test_app import GALLERY, SCRIPT, png_bytes, values, write_logs

import vitrm
from app.text import md, md_table
from app.views import model_card
from vitrm import ViTRM, ViTRMConfig
from vitrm.evaluate import evaluate_checkpoint

TIMEOUT = 180                         # one script run; generous for 2 busy cores
LOOPBACK = "http://127.0.0.1:9"       # nothing listens there; the browser test uses a recording server
CLASS_NAMES = (f"**BOLD** [link]({LOOPBACK}/c) ![img]({LOOPBACK}/i.png)",
               f"<a href='{LOOPBACK}/a'>html</a> <b>tag</b>\n# heading",
               "`tick` $x^2$ :red[red] ~~strike~~ " + "long " * 400)
DIR_NAME = "**DIR** <b>dir [dirlink](#x) `dir`"     # no "/": it is one directory's name
DATA_NOTE = f"note ![note]({LOOPBACK}/n.png) **NOTE**"
LINK = f"cat_0003`\n\n**LINKBOLD** [here]({LOOPBACK}/l)"
UPLOAD = "**UP** <b>up [up](#u) `up`.png"      # a file name: no "/"
# What each would look like had it been rendered rather than escaped: none may appear raw.
RAW = ["**BOLD**", f"]({LOOPBACK}", "<a ", "<b>", "\n#", "`tick`", "$x^2$", ":red[red]", "~~strike~~", "**DIR**",
       "**NOTE**", "**LINKBOLD**", "**UP**", "`dir`", "](#x)"]
TINY = ViTRMConfig(dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, num_classes=3,
                   class_names=("a", "b", "c"))
# Fields shown as plain text, never as markdown: select and multiselect options and values, typed input,
# identifiers and URLs. (Radio options do render markdown, so they are checked.)
PLAIN_FIELDS = {"default", "value", "placeholder", "spec", "id", "form_id", "url", "file_name", "string_value"}
PLAIN_WIDGET_FIELDS = {"Selectbox.options", "Selectbox.raw_value", "MultiSelect.options", "MultiSelect.raw_values",
                       "MultiSelect.raw_default", "Selectbox.raw_default"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A checkpoints root holding one evaluated checkpoint whose every outside string carries markup."""
    return plant_hostile_checkpoint(tmp_path_factory.mktemp("hostile"), CLASS_NAMES, DATA_NOTE, DIR_NAME)


def plant_hostile_checkpoint(root: Path, class_names: tuple[str, ...], data_note: str, dir_name: str) -> Path:
    """``root/checkpoints/dir_name``: a tiny ViTRM evaluated on gallery images under ``root/data``, whose
    config, metrics.json and predictions.csv then carry ``class_names`` and ``data_note`` (three classes)."""
    data = root / "data"
    table = pd.read_csv(GALLERY / "labels.csv")
    for split in ("test", "train"):
        for label, folder in zip(("cat", "dog", "frog"), TINY.class_names):
            (data / split / folder).mkdir(parents=True)
            for file in table[table["label"] == label]["file"][:2]:
                shutil.copy(GALLERY / file, data / split / folder / file)
    path = root / "checkpoints" / dir_name
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), path)
    evaluate_checkpoint(path, f"imagefolder:{data}", cache_dir=None, progress=False)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "class_names": list(class_names)}))
    metrics = json.loads((path / "metrics.json").read_text())
    (path / "metrics.json").write_text(json.dumps({**metrics, "class_names": list(class_names),
                                                   "data_note": data_note}))
    predictions = vitrm.read_predictions(path)
    predictions["label_name"] = [class_names[i] for i in predictions["label"]]
    # Kept as a plain predictions.csv (the older format, still read), so that tests can damage it as text.
    vitrm.predictions_file(path).unlink()
    predictions.to_csv(path / "predictions.csv", index=False)
    write_logs((path, 2))
    return path


def run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, "\n".join(e.message + "\n" + "\n".join(e.stack_trace[-6:]) for e in at.exception)
    return at


def app_on(root: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(root))
    monkeypatch.delenv("VITRM_CHECKPOINT_ROOTS", raising=False)
    return AppTest.from_file(str(SCRIPT), default_timeout=TIMEOUT)


def shown_strings(at: AppTest) -> list[tuple[str, str]]:
    """(field, text) of every string field of every element on the page that Streamlit may render as markdown."""
    found = []

    def walk_proto(message, prefix):
        for field, value in message.ListFields():
            name = f"{prefix}.{field.name}"
            if field.name in PLAIN_FIELDS or name in PLAIN_WIDGET_FIELDS:
                continue
            repeated = field.is_repeated
            values = list(value) if repeated else [value]
            for v in values:
                if isinstance(v, str):
                    found.append((name, v))
                elif hasattr(v, "ListFields"):
                    walk_proto(v, name)

    nodes = list(at._tree)                     # a Block iterates over itself and every descendant
    # Element kinds that the generic walk may not reach inside layout blocks, collected by type as well.
    for kind in ("image", "metric", "button", "radio", "expander", "markdown", "caption", "error", "warning", "info",
                 "success", "header", "subheader", "selectbox", "multiselect", "text_input", "number_input", "slider",
                 "toggle"):
        nodes += list(getattr(at, kind))
    for node in nodes:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            walk_proto(proto, type(proto).__name__)
    return found


def plotly_strings(at: AppTest) -> list[str]:
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        walk(spec.get("data"))
        walk(spec.get("layout"))
    return out


class Audit:
    """Collects what every visited page showed, and checks it all at the end."""

    def __init__(self):
        self.markdown: list[tuple[str, str, str]] = []
        self.plotly: list[tuple[str, str]] = []

    def visit(self, at: AppTest, where: str) -> AppTest:
        run(at)
        self.markdown += [(where, field, text) for field, text in shown_strings(at)]
        self.plotly += [(where, text) for text in plotly_strings(at)]
        return at

    def assert_no_markup(self):
        for where, field, text in self.markdown:
            # A backslash-escaped character is shown as itself: only what is left unescaped can be markup.
            live = re.sub(r"\\[!-/:-@\[-`{-~]", "\x00", text)
            for raw in RAW:
                assert raw not in live, f"{where}: {field} shows raw markup {raw!r}: {text[:300]!r}"
        for where, text in self.plotly:
            for raw in ("<a ", "<b>", "<img", "\n"):
                assert raw not in text, f"{where}: a Plotly string holds raw {raw!r}: {text[:300]!r}"

    def shown(self, text: str) -> bool:
        return any(text in t for _, _, t in self.markdown)


def test_every_outside_string_is_shown_as_text_on_every_page(hostile, monkeypatch):
    audit = Audit()
    at = app_on(hostile.parent, monkeypatch)
    at.query_params["image"] = LINK
    audit.visit(at, "explore, opened by a hostile link")
    assert any("has no image of that name" in e.value for e in at.error)
    at.selectbox(key="gallery_file").set_value("cat_0003.jpg")
    at.session_state[model_card.OPEN] = True
    audit.visit(at, "explore, scrubber, with the model card open")
    at.button(key="play_button").click()
    audit.visit(at, "explore, scrubber, playing")
    assert any("Top class at step" in m.value and "of 4**" in m.value for m in at.markdown), "Play's line shown"
    at.button(key="play_button").click()              # stop
    at.toggle(key="classroom").set_value(True)
    audit.visit(at, "explore, classroom mode")
    at.button(key="play_button").click()
    audit.visit(at, "explore, classroom mode, playing")
    at.button(key="play_button").click()
    at.toggle(key="classroom").set_value(False)
    run(at)
    for view in ("Evolving state", "Attention", "Attribution"):
        at.radio(key="explore_view").set_value(view)
        audit.visit(at, f"explore, {view}")
    at.radio(key="explore_view").set_value("Scrubber")
    at.radio(key="source").set_value("Upload")
    audit.visit(at, "explore, upload")
    at.file_uploader[0].set_value([(UPLOAD, png_bytes(seed=4), "image/png"), ("bad " + UPLOAD, b"junk", "image/png")])
    audit.visit(at, "explore, uploaded")
    at.switch_page("screens/dataset.py")
    audit.visit(at, "dataset analysis")
    for section in ("Per class", "Confusion matrix", "Calibration", "Halting", "Galleries", "Training log"):
        at.radio(key="analysis_view").set_value(section)
        audit.visit(at, f"dataset analysis, {section}")
    at.switch_page("screens/how_it_works.py")
    audit.visit(at, "how it works")

    audit.assert_no_markup()
    # The strings were really there, escaped: the test looked where they are shown.
    for text in (md(CLASS_NAMES[0]), md(DIR_NAME), md(DATA_NOTE), md(LINK, 60), md(UPLOAD)):
        assert audit.shown(text), f"{text!r} was never shown"
    assert audit.shown("Training data:"), "the model card was opened and audited"
    assert any("&lt;a href=" in text for _, text in audit.plotly), "class names reach the charts, escaped"


def test_a_predictions_row_that_points_outside_the_data_folder_is_refused(hostile, tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    path = Path(shutil.copytree(hostile, root / "escape"))
    metrics = json.loads((path / "metrics.json").read_text())
    data_root = Path(metrics["data"].split(":", 1)[1])
    outside = tmp_path / "private.jpg"
    shutil.copy(GALLERY / "cat_0000.jpg", outside)
    (data_root / "test" / "a" / "link.jpg").unlink(missing_ok=True)
    (data_root / "test" / "a" / "link.jpg").symlink_to(outside)
    table = pd.read_csv(path / "predictions.csv", keep_default_na=False)
    table["pred_1"] = (table["label"] + 1) % 3            # every image misclassified at step 1
    table["path"] = [str(outside), "../../private.jpg", "test/a/link.jpg"] + list(table["path"][3:])
    table.to_csv(path / "predictions.csv", index=False)
    at = app_on(root, monkeypatch)
    run(at)
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value("Galleries")
    run(at)
    at.slider(key=f"analysis_n::{path}").set_value(1)
    at.radio(key="gallery_kind").set_value("misclassified")
    run(at)
    refused = [c.value for c in at.caption if "refused: the row's path leads outside the data folder" in c.value]
    assert len(refused) == 3
    shown = len(table) - 3
    assert len(at.image) == shown, "only the rows inside the data folder show an image"
    assert len([b for b in at.button if b.label == "Open in scrubber"]) == shown


def test_a_link_inside_the_checkpoints_root_that_points_outside_is_not_listed(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "checkpoints", tmp_path / "elsewhere"
    torch.manual_seed(0)
    vitrm.save(ViTRM(TINY), root / "inside")
    vitrm.save(ViTRM(TINY), elsewhere / "outside")
    (root / "sneaky").symlink_to(elsewhere / "outside", target_is_directory=True)
    (root / "alias").symlink_to(root / "inside", target_is_directory=True)
    from app import checkpoints
    monkeypatch.setenv("VITRM_CHECKPOINTS", str(root))
    monkeypatch.delenv("VITRM_CHECKPOINT_ROOTS", raising=False)
    assert checkpoints.discover() == [(root / "inside").resolve()]
    at = run(app_on(root, monkeypatch))
    assert at.multiselect(key="selected_checkpoints").options == ["inside"]
    at.text_input(key="typed_path").set_value(str(root / "sneaky"))
    run(at)
    assert any("outside the allowed checkpoint roots" in e.value for e in at.sidebar.error)


@pytest.mark.parametrize("typed, says", [("ckpt\x00evil", "NUL byte"), ("x" * 6000, "characters long"),
                                         ("a/" + "y" * 300, "bytes long")])
def test_a_typed_path_with_a_nul_byte_or_thousands_of_characters_is_one_message(hostile, monkeypatch, typed, says):
    at = run(app_on(hostile.parent, monkeypatch))
    at.text_input(key="typed_path").set_value(typed)
    run(at)
    assert any(says in e.value for e in at.sidebar.error)


@pytest.mark.parametrize("damaged, view, still_works", [
    ("metrics.json", "Per class", "Training log"),
    ("predictions.csv", "Galleries", "Confusion matrix"),
    ("train_log.csv", "Training log", "Per class"),
])
def test_a_damaged_side_file_costs_only_the_views_that_need_it(hostile, tmp_path, monkeypatch, damaged, view,
                                                                still_works):
    root = tmp_path / "checkpoints"
    path = Path(shutil.copytree(hostile, root / "damaged"))
    text = (path / damaged).read_text()
    (path / damaged).write_text(text[: len(text) // 2] if damaged.endswith(".json") else
                                text.replace("\n", "\nnot,a,number,row\n", 1))
    at = app_on(root, monkeypatch)
    run(at)                                            # the sidebar reads every side file: the page still draws
    assert metrics_shown(at), "the Explore page works"
    at.switch_page("screens/dataset.py")
    run(at)
    assert any(damaged in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]
    at.radio(key="analysis_view").set_value(still_works)
    run(at)
    assert at.get("plotly_chart"), f"{still_works} still draws"
    at.radio(key="analysis_view").set_value(view)
    run(at)                                            # no exception: the view says what is missing


def test_a_checkpoints_per_image_table_is_read_once_and_only_when_first_asked_for(hostile, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from app import checkpoints
    from vitrm import sidefiles

    calls = []
    reader = sidefiles.read_predictions
    monkeypatch.setattr(sidefiles, "read_predictions", lambda *args: calls.append(args) or reader(*args))
    files = checkpoints.read_files(hostile)
    assert calls == [], "the rest of the files are read without the large table"
    with ThreadPoolExecutor(8) as pool:                 # sessions opening the shared files at once
        tables = list(pool.map(lambda _: files.predictions, range(16)))
    assert len(calls) == 1 and all(t is tables[0] for t in tables) and len(tables[0]) > 0

    damaged = Path(shutil.copytree(hostile, tmp_path / "damaged"))
    (damaged / "predictions.csv").write_text("index,label\nnot,a,number,row\n")
    files = checkpoints.read_files(damaged)
    assert any("predictions.csv" in problem for problem in files.problems), "its problem is said with the others"
    assert files.predictions is None


def metrics_shown(at: AppTest) -> bool:
    return any(m.label.startswith("Top class at step") for m in at.metric)


def test_uploads_beyond_the_session_budget_drop_the_oldest_with_a_message(hostile, monkeypatch):
    from app import inputs
    files = [(f"photo{i}.png", png_bytes(seed=i, size=(200, 200)), "image/png") for i in range(4)]
    size = len(files[0][1])
    monkeypatch.setattr(inputs, "UPLOAD_BUDGET_BYTES", int(2.5 * size))
    at = run(app_on(hostile.parent, monkeypatch))
    at.radio(key="source").set_value("Upload")
    run(at)
    at.file_uploader[0].set_value(files)
    run(at)
    assert any("the 2 oldest were dropped: photo0.png, photo1.png" in w.value.replace("\\", "") for w in at.warning)
    assert [name for name, _ in at.session_state["uploads"]] == ["photo2.png", "photo3.png"]
    assert sum(len(data) for _, data in at.session_state["uploads"]) <= inputs.UPLOAD_BUDGET_BYTES
    assert list(at.table[0].value["file"]) == ["photo2.png", "photo3.png"]


def test_the_uploads_of_sessions_that_have_ended_are_freed(monkeypatch):
    """Streamlit forgets a session after its reconnect window but keeps its uploaded files: the app frees them."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    from app.inputs import release_departed_sessions

    store = MemoryUploadedFileManager("/_stcore/upload_file")
    for session in ("here", "waiting-to-reconnect", "gone"):
        store.add_file(session, UploadedFileRec(file_id=f"{session}-1", name="a.png", type="image/png",
                                                data=b"x" * 1000))

    class Sessions:
        def get_session_info(self, session_id):
            return object() if session_id in ("here", "waiting-to-reconnect") else None

    class FakeRuntime:
        uploaded_file_mgr = store
        _session_mgr = Sessions()

    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: FakeRuntime()))
    assert release_departed_sessions() == 1
    assert sorted(store.file_storage) == ["here", "waiting-to-reconnect"]
    assert store.get_files("gone", ["gone-1"]) == [] and len(store.get_files("here", ["here-1"])) == 1


@pytest.mark.parametrize("address", ["http://127.0.0.1:9/x", "HTTPS://127.0.0.1:9", "www.localhost", "user@127.0.0.1",
                                     "see <http://127.0.0.1:9>", "ftp://127.0.0.1/f", "mailto:user@127.0.0.1"])
def test_a_bare_address_in_an_outside_string_cannot_become_a_link(address):
    """Streamlit's markdown links bare addresses after escapes are resolved (tests/test_browser_hostile.py saw
    it): what md() gives, read as the browser reads it, matches none of GitHub markdown's autolink patterns."""
    shown = re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md(address))          # the escapes resolved
    assert not re.search(r"(?i)(https?://|www\.|[-.\w+]@[-\w]+\.)", shown), repr(shown)
    assert shown.replace("\u2060", "") == address, "only invisible joiners were added"


def test_a_pipe_or_a_line_break_in_a_value_stays_inside_its_table_cell():
    table = md_table([{"model": "a | b\n| c |", "top class": "cat"}, {"model": "|", "top class": "dog|"}])
    unescaped_pipes = [len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()]
    assert unescaped_pipes == [3, 3, 3, 3], table        # header, rule, two rows: 2 cells each


# --------------------------------------------------------------------------- round three (issue 24)

OOD_RULE = f"![rule]({LOOPBACK}/r.png) [rule link]({LOOPBACK}/r) :red[RULE] $x^2$ **RULE** <b>rule</b>"


def plant_ood(path: Path, **changes) -> None:
    """An out-of-distribution rule fitted on random features of the tiny model's width, its ood.json changed."""
    from vitrm import ood
    generator = torch.Generator().manual_seed(0)
    rule = ood.fit(torch.randn(60, TINY.dim, generator=generator), torch.arange(60) % 3,
                   torch.randn(20, TINY.dim, generator=generator))
    ood.save(rule, path)
    facts = json.loads((path / ood.FACTS).read_text())
    (path / ood.FACTS).write_text(json.dumps({**facts, **changes}))


def explore_gallery_image(root: Path, monkeypatch) -> AppTest:
    at = run(app_on(root, monkeypatch))
    at.selectbox(key="gallery_file").set_value("cat_0003.jpg")
    return run(at)


def test_the_ood_rule_text_is_shown_as_text(hostile, tmp_path, monkeypatch):
    # ood.json's rule was once put raw into a caption: its markdown image made every visitor's browser fetch a URL.
    root = tmp_path / "checkpoints"
    path = Path(shutil.copytree(hostile, root / "ood"))
    plant_ood(path, rule=OOD_RULE)
    at = explore_gallery_image(root, monkeypatch)
    captions = [c.value for c in at.caption if "Out-of-distribution check" in c.value or "Rule:" in c.value]
    assert captions and all(md(OOD_RULE, 600) in c for c in captions)
    for c in captions:
        live = re.sub(r"\\[!-/:-@\[-`{-~]", "\x00", c)
        for raw in ("](", "**RULE**", ":red[", "$x^2$", "<b>"):
            assert raw not in live, c


@pytest.mark.parametrize("changes, says", [
    ({"val_images": "5000"}, "val_images must be an integer"),
    ({"threshold": "187.1"}, "threshold must be a finite number"),
    ({"val_false_alarm": [0.05]}, "val_false_alarm must be a finite number"),
])
def test_an_ood_json_with_strings_where_numbers_belong_turns_the_check_off_not_the_page(
        hostile, tmp_path, monkeypatch, changes, says):
    root = tmp_path / "checkpoints"
    path = Path(shutil.copytree(hostile, root / "ood"))
    plant_ood(path, **changes)
    at = explore_gallery_image(root, monkeypatch)          # run() fails on any exception
    assert metrics_shown(at)
    assert any("out-of-distribution check is off" in w.value and says in w.value.replace("\\", "")
               for w in at.warning), [w.value for w in at.warning]


def test_a_data_folder_outside_the_dataset_roots_is_not_shown_and_the_views_say_why(hostile, tmp_path,
                                                                                     monkeypatch):
    from app import checkpoints
    root = tmp_path / "checkpoints"
    path = Path(shutil.copytree(hostile, root / "rooted"))
    metrics = json.loads((path / "metrics.json").read_text())
    (path / "metrics.json").write_text(json.dumps({**metrics, "data": "imagefolder:/"}))
    assert checkpoints.data_root("imagefolder:/") is None
    assert "outside the allowed dataset roots" in checkpoints.data_root_problem("imagefolder:/")
    assert checkpoints.data_root(metrics["data"]) is not None, "the test's own data folder is allowed"
    # A ?dataset= link to a server file relative to "/" opens nothing.
    at = app_on(root, monkeypatch)
    at.query_params["dataset"] = (GALLERY / "cat_0000.jpg").resolve().relative_to("/").as_posix()
    run(at)
    assert st_state(at, "source") != "Dataset image" and st_state(at, "dataset_image") is None
    messages = [e.value for kind in (at.error, at.warning, at.info) for e in kind]
    assert any("not an image file under the focus model's data directory" in m for m in messages), messages
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value("Galleries")
    run(at)
    assert any("outside the allowed dataset roots" in w.value for w in at.warning), [w.value for w in at.warning]
    assert len(at.image) == 0


def st_state(at: AppTest, key: str):
    return at.session_state[key] if key in at.session_state else None


def test_too_many_stage_folders_cost_only_the_history(hostile, tmp_path):
    from app import checkpoints
    from vitrm.checkpoint import MAX_STAGES
    path = Path(shutil.copytree(hostile, tmp_path / "staged"))
    log = (path / "train_log.csv").read_bytes()
    for k in range(1, MAX_STAGES + 2):
        (path / f"stage{k}").mkdir()
        (path / f"stage{k}" / "train_log.csv").write_bytes(log)
    files = checkpoints.read_files(path)
    assert any(f"more than {MAX_STAGES} stage folders" in p for p in files.problems)
    assert len(files.train_log) == len(pd.read_csv(path / "train_log.csv")), "the run's own log is still shown"
    assert files.metrics is not None and files.predictions is not None


def test_the_files_of_one_checkpoint_share_one_budget(hostile, tmp_path, monkeypatch):
    from app import checkpoints
    from vitrm import sidefiles
    path = Path(shutil.copytree(hostile, tmp_path / "heavy"))
    used = sum((path / name).stat().st_size for name in ("config.json", "metrics.json", "train_log.csv"))
    monkeypatch.setattr(sidefiles, "MAX_CHECKPOINT_BYTES", used + 100)    # the table no longer fits
    files = checkpoints.read_files(path)
    assert files.metrics is not None and files.predictions is None
    assert any("the files of this checkpoint together pass the limit" in p for p in files.problems)


def test_a_map_or_ood_rule_past_the_checkpoints_budget_is_refused_and_the_pages_say_so(hostile, tmp_path,
                                                                                       monkeypatch):
    # projection.safetensors was once read under its own cap alone, and ood.json with ood.safetensors under a budget
    # of their own: a checkpoint whose other files used nearly all of its budget could still make the app read them.
    from test_hostile import _plant_projection_and_ood

    from app import checkpoints
    from app.views import projector
    from vitrm import sidefiles
    root = tmp_path / "checkpoints"
    path = Path(shutil.copytree(hostile, root / "full"))
    _plant_projection_and_ood(path)
    whole = checkpoints.read_files(path)
    assert not isinstance(whole.projection, str) and not isinstance(whole.ood_rule, str), "both read within budget"
    eager = checkpoints.read_files(path)._budget.used       # config, metrics, logs: what the first read takes
    monkeypatch.setattr(sidefiles, "MAX_CHECKPOINT_BYTES", eager + 100)     # each of the others is larger
    files = checkpoints.read_files(path)
    for found, name in ((files.projection, "projection.safetensors"), (files.ood_rule, "ood.json")):
        assert isinstance(found, str) and name in found and "together pass the limit" in found, found
    at = explore_gallery_image(root, monkeypatch)
    assert metrics_shown(at), "the Explore page still answers"
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "The out-of-distribution check is off" in warnings and "together pass the limit" in warnings, warnings
    at.switch_page("screens/dataset.py")
    run(at)
    at.radio(key="analysis_view").set_value(projector.SECTION)
    run(at)
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert "The map of answers cannot be shown" in errors and "projection.safetensors" in errors, errors


def test_the_sweep_and_cost_views_read_nothing_past_a_checkpoints_budget_and_say_what_they_leave_out(hostile, tmp_path,
                                                                                                  monkeypatch):
    # vitrm.sweep once read every checkpoint's metrics.json and train_log.csv again beside the app's one reading of
    # them, each under its own cap alone and charged to no budget: Accuracy vs trained N and Accuracy vs cost drew
    # what a checkpoint's budget had refused. They now take the app's reading (CheckpointFiles.point_files).
    import dataclasses

    from app import checkpoints
    from app.views import efficiency
    from vitrm import sidefiles
    root = tmp_path / "checkpoints"
    light, heavy = (Path(shutil.copytree(hostile, root / name)) for name in ("sweep-N1", "sweep-N2"))
    torch.manual_seed(1)
    one = vitrm.save(ViTRM(dataclasses.replace(TINY, trained_steps=1)), tmp_path / "n1")
    shutil.copy(one / "model.safetensors", light / "model.safetensors")
    config = json.loads((heavy / "config.json").read_text())
    (light / "config.json").write_text(json.dumps({**config, "trained_steps": 1}))
    used = checkpoints.read_files(light)._budget.used          # config, metrics and log: all the light one needs
    # The heavy member's metrics.json carries 50,000 more bytes (whitespace: the same figures), past the budget.
    (heavy / "metrics.json").write_text((heavy / "metrics.json").read_text() + " " * 50_000)
    monkeypatch.setattr(sidefiles, "MAX_CHECKPOINT_BYTES", used + 20_000)
    at = run(app_on(root, monkeypatch))
    at.multiselect(key="selected_checkpoints").set_value([str(light)])
    run(at)
    at.switch_page("screens/dataset.py")
    run(at)
    trained = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                   if json.loads(c.proto.spec)["layout"]["title"]["text"].startswith("Accuracy vs trained N"))
    assert values(trained["data"][0]["x"]) == [1], "the heavy member's accuracy, past its budget, is not drawn"
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "sweep-N2: its accuracy is not shown" in warnings and "together pass the limit" in warnings, warnings
    at.radio(key="analysis_view").set_value(efficiency.SECTION)
    run(at)
    cost = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"].split(" ")[0] for t in cost["data"]] == ["sweep-N1"] * 2, "one point, on both panels"
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "sweep-N2: its accuracy is not shown" in warnings, warnings
    assert "sweep-N2: its training budget is not shown" in warnings, warnings
    assert checkpoints.read_files(heavy).point_files().metrics is None


def test_the_apps_reading_gives_the_sweep_the_epochs_of_the_checkpoints_own_log(hostile, tmp_path):
    # The sweep once read train_log.csv itself; from the app's reading, a staged history, it counts the same rows.
    from app import checkpoints
    path = Path(shutil.copytree(hostile, tmp_path / "staged"))
    write_logs((path, 4), (path / "stage1", 3), (path / "stage2b", 4))
    files = checkpoints.read_files(path)
    assert len(files.train_log) == 11, "the history: stage 1, then this run and its sibling"
    assert files.point_files().epochs == vitrm.read_point_files(path).epochs == 4
    assert files.point_files().metrics == vitrm.read_point_files(path).metrics


@pytest.mark.parametrize("mark", ["\u200b", "\u200c", "\u200d", "\ufeff", "\u061c", "\u202e", "\u2066", "\u2060"])
def test_invisible_and_bidi_marks_never_reach_the_page(mark):
    from app.text import md, plain, plotly
    name = f"cat{mark}.png"
    for shown in (plain(name), md(name), plotly(name)):
        assert mark not in shown and "cat" in shown and "png" in shown


def test_the_largest_class_count_allowed_draws_the_first_page_in_kilobytes(tmp_path, monkeypatch):
    # 100,000 classes (config.json's most): a line per class made a 27 MB chart, the first page took 128 s to
    # build on the loaded 2-core machine, and the browser tab stopped answering. The most probable 20 are drawn,
    # and the chart's title says so.
    from vitrm.config import INT_RANGES
    most = INT_RANGES["num_classes"][1]
    config = ViTRMConfig(dim=16, heads=2, layers=1, trained_steps=2, latent_updates=1, num_classes=most,
                         class_names=tuple(f"class{i:06d}" for i in range(most)))
    torch.manual_seed(0)
    vitrm.save(ViTRM(config), tmp_path / "checkpoints" / "many")
    at = explore_gallery_image(tmp_path / "checkpoints", monkeypatch)
    assert metrics_shown(at)
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: c.proto.spec for c in at.get("plotly_chart")}
    lines = [t for t in charts if "most probable" in t]
    assert lines == [f"The 20 most probable of {most:,} classes (by their highest probability at any step), "
                     "step by step"]
    assert len(json.loads(charts[lines[0]])["data"]) == 20
    assert sum(len(spec) for spec in charts.values()) < 200_000
