"""Where the image comes from: the built-in gallery, uploads, the camera, or a dataset image.

Uploaded and photographed bytes are copied into the session when they change, so they
survive a visit to another page (Streamlit forgets an uploader's files when its page is
not drawn).

A link can open a gallery image: ``?image=cat_0003`` (the file name, with or without
``.jpg``). While a gallery image is shown the address carries its name, so the address bar is
always a link to what is on the screen (a teacher can share it with a class). A name that is
not in the gallery gets a message naming valid ones; the page then shows the gallery as usual.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

import vitrm
from vitrm import InvalidImageError, read_image_file

from . import text
from .cache import PreparedImage, digest, prepare_image
from .text import md, plain

GALLERY = Path(__file__).resolve().parent / "gallery"
SOURCES = ["Gallery", "Upload", "Camera"]
DATASET = "Dataset image"
LINK = "image"           # the query parameter that names a gallery image
DATASET_LINK = "dataset"  # the query parameter that names a test image under the focus model's data root
# What one session may hold in uploads (each file is also capped, at 20 MB, by .streamlit/config.toml):
# a class of 30 holds at most 30 times this. Set with VITRM_UPLOAD_BUDGET_MB.
UPLOAD_BUDGET_BYTES = int(float(os.environ.get("VITRM_UPLOAD_BUDGET_MB", "40")) * 2**20)


@st.cache_resource(show_spinner=False)
def gallery_table() -> pd.DataFrame:
    """The gallery's files and labels; shared by every session and only read (a resource: st.cache_data would
    copy the table on every page run)."""
    return pd.read_csv(GALLERY / "labels.csv")


def prepare(name: str, data: bytes, sizes: tuple[int, ...], label: str | None = None) -> PreparedImage:
    return prepare_image(digest(data), name, sizes, label, data)


def _store_uploads() -> None:
    """Copy the uploader's files into the session, newest kept first, within UPLOAD_BUDGET_BYTES.

    The oldest files beyond the budget are dropped with a message, and released from Streamlit's
    own upload store too, so one session cannot park more than its budget on the server.
    """
    files = list(st.session_state.get("uploader") or [])
    kept, total = [], 0
    for f in reversed(files):                    # newest last in the uploader's list
        if total + f.size > UPLOAD_BUDGET_BYTES:
            break
        kept.append(f)
        total += f.size
    kept.reverse()
    dropped = files[:len(files) - len(kept)]
    st.session_state["uploads"] = [(f.name, f.getvalue()) for f in kept]
    st.session_state["uploads_dropped"] = [plain(f.name) for f in dropped]
    _release(dropped)
    release_departed_sessions()
    st.session_state["explore_newest_upload"] = True


def _release(files) -> None:
    """Free dropped files from Streamlit's upload store (as st.chat_input does with its own)."""
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    if ctx is None or not isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        return
    for f in files:
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=f.file_id)


def release_departed_sessions() -> int:
    """Free the uploads of sessions that have ended; how many sessions' files were freed.

    Streamlit keeps a session that left for its reconnect window (``server.disconnectedSessionTTL``,
    two minutes) and then forgets it, but not the files it uploaded: its upload store keeps them by
    session id until the server stops. So every class that leaves would leave its uploads in memory for
    good. At each upload, the files of every session the runtime no longer knows are dropped. (Reads the
    runtime's session manager, which Streamlit does not export: if that changes, nothing is freed.)
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    if not Runtime.exists():
        return 0
    runtime = Runtime.instance()
    store, sessions = runtime.uploaded_file_mgr, getattr(runtime, "_session_mgr", None)
    if not isinstance(store, MemoryUploadedFileManager) or not hasattr(sessions, "get_session_info"):
        return 0
    departed = [s for s in list(store.file_storage) if sessions.get_session_info(s) is None]
    for session_id in departed:
        store.remove_session_files(session_id)
    return len(departed)


def _store_photo() -> None:
    photo = st.session_state.get("camera")
    st.session_state["photo"] = ("camera photo", photo.getvalue()) if photo is not None else None


def gallery_file(name: str) -> str | None:
    """The gallery file that a link's ``?image=`` names ("cat_0003" or "cat_0003.jpg"), else None."""
    name = name.strip()
    for file in gallery_table()["file"]:
        if name in (file, file.rsplit(".", 1)[0]):
            return file
    return None


def _follow_link() -> str | None:
    """Apply ``?image=NAME`` when the address names a new one; returns a message if it is not in the gallery.

    Applied once per value, so the user's own choices afterwards stand.
    """
    value = st.query_params.get(LINK)
    if value is None or value == st.session_state.get("image_link"):
        return None
    st.session_state["image_link"] = value
    st.session_state["source"] = "Gallery"
    file = gallery_file(value)
    if file is None:
        files = list(gallery_table()["file"])
        return (f"The link asks for the gallery image “{md(value, 60)}”, and the gallery has no image of that name. "
                f"Names look like `?image=cat_0003` ({len(files)} images, from {files[0].rsplit('.', 1)[0]} "
                f"to {files[-1].rsplit('.', 1)[0]}); the gallery is shown below.")
    st.session_state["gallery_file"] = file
    return None


def _set_query_param(key: str, value: str | None) -> None:
    """Make the address carry ``key=value``, or drop ``key`` for None; untouched when already so."""
    if value is None:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != value:
        st.query_params[key] = value


def _link_to(file: str | None) -> None:
    """Keep the address a link to the gallery image on the screen (no parameter for other sources)."""
    name = file.rsplit(".", 1)[0] if file else None
    _set_query_param(LINK, name)
    st.session_state["image_link"] = name


def _gallery(sizes, marks: dict[str, str]) -> PreparedImage:
    table = gallery_table()
    labels = dict(zip(table["file"], table["label"]))
    files = list(marks) + [f for f in table["file"] if f not in marks]     # demo picks first
    file = st.selectbox("Gallery image (CIFAR-10 test set, JPEG q75 copy)", files, key="gallery_file",
                        format_func=lambda f: f"★ {labels[f]} · {f} (demo: {marks[f]})" if f in marks
                        else f"{labels[f]} · {f}",
                        help="★ marks demo picks: images where the model's answer changes or its confidence in "
                             "the true class grows most over the steps (from its predictions.csv)." if marks else None)
    _link_to(file)
    return prepare(file, (GALLERY / file).read_bytes(), sizes, labels[file])


def _uploads(sizes) -> tuple[PreparedImage | None, list[PreparedImage]]:
    st.file_uploader("Upload one or more images (PNG, JPEG, WebP, BMP, TIFF, GIF; any size)",
                     accept_multiple_files=True, key="uploader", on_change=_store_uploads)
    dropped = st.session_state.get("uploads_dropped")
    if dropped:
        st.warning(f"Uploads are limited to {UPLOAD_BUDGET_BYTES / 2**20:.0f} MB per visitor, so the "
                   f"{len(dropped)} oldest were dropped: {md(', '.join(dropped), 300)}. Remove files from the "
                   "list above to make room.")
    prepared = [prepare(name, data, sizes) for name, data in st.session_state.get("uploads", [])]
    if not prepared:
        return None, prepared
    newest = st.session_state.pop("explore_newest_upload", False)
    if newest or st.session_state.get("upload_choice", 0) >= len(prepared):
        st.session_state["upload_choice"] = len(prepared) - 1    # what was just added is what the user wants to see
    # Every file, the refused ones too: a refused file chosen (as the newest is) shows its message in the answer's
    # place, where showing the previous image's answer read as the answer for the new file.
    choice = st.selectbox("Image to explore", range(len(prepared)), key="upload_choice",
                          format_func=lambda i: plain(prepared[i].name) + ("" if prepared[i].ok else " (refused)"))
    return prepared[choice], prepared


def _camera(sizes) -> PreparedImage | None:
    st.camera_input("Take a photo", key="camera", on_change=_store_photo)
    photo = st.session_state.get("photo")
    return prepare(photo[0], photo[1], sizes) if photo else None


def _dataset_file(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is an image file that stays under ``root`` (symlinks followed), else None."""
    try:
        path = vitrm.paths.confine(root, relative)
    except vitrm.paths.UnsafePathError:
        return None
    return path if path.is_file() and path.suffix.lower() in (".jpg", ".jpeg", ".png") else None


def _follow_dataset_link(root: Path | None) -> str | None:
    """Apply ``?dataset=test/cat/0003.jpg`` once per value; returns a message when it cannot be opened."""
    value = st.query_params.get(DATASET_LINK)
    if value is None or value == st.session_state.get("dataset_link"):
        return None
    st.session_state["dataset_link"] = value
    path = _dataset_file(root, value) if root is not None else None
    if path is None:
        return (f"The link asks for the test image `{text.plain(value).replace('`', '')[:80]}`, which is not an "
                "image file under the focus model's data directory; the gallery is shown instead.")
    st.session_state["dataset_image"] = (str(path), path.parent.name)
    st.session_state["source"] = DATASET
    return None


def _link_to_dataset(root: Path | None) -> None:
    """While a dataset image under ``root`` is shown, the address names it (relative to ``root``)."""
    shown = st.session_state.get("dataset_image")
    relative = None
    if root is not None and shown and vitrm.paths.is_inside(shown[0], [root]) and Path(shown[0]).is_file():
        relative = Path(shown[0]).resolve().relative_to(root.resolve()).as_posix()
    _set_query_param(DATASET_LINK, relative)
    st.session_state["dataset_link"] = relative


def choose_image(sizes: tuple[int, ...], marks: dict[str, str] | None = None, data_root: Path | None = None,
                 source_slot=None) -> tuple[PreparedImage | None, list[PreparedImage]]:
    """Draws the source controls; returns (the image to explore or None, every upload). ``marks``: gallery
    files to list first and mark, with why (classroom demo picks). ``data_root``: where ``?dataset=`` links
    point (the focus model's test data). ``source_slot``: where the source radio goes (a column beside
    the model radio), else in line."""
    link_error = _follow_link() or _follow_dataset_link(data_root)
    if link_error:
        st.error(link_error)
    options = SOURCES + ([DATASET] if st.session_state.get("dataset_image") else [])
    if st.session_state.get("source") not in options:
        st.session_state["source"] = options[0]
    source = (source_slot or st).radio("Image source", options, key="source", horizontal=True)
    if source != DATASET:
        _link_to_dataset(None)
    if source == "Gallery":
        return _gallery(sizes, marks or {}), []
    _link_to(None)
    if source in ("Upload", "Camera"):
        st.caption("An uploaded or photographed image cannot be linked: it stays in this browser session only.")
    if source == "Upload":
        return _uploads(sizes)
    if source == "Camera":
        return _camera(sizes), []
    _link_to_dataset(data_root)
    path, label = st.session_state["dataset_image"]
    # Named by its place in the data folder ("test/cat/0971.jpg"), not "0971.jpg", which every class folder has.
    name = st.session_state.get("dataset_link") or f"{Path(path).parent.name}/{Path(path).name}"
    try:
        data = read_image_file(path)
    except InvalidImageError as e:
        return PreparedImage(name=name, digest="", label=label, error=str(e)), []
    return prepare(name, data, sizes, label), []
