"""Paths that come from outside: the one rule that confines them, and a safe walk of image folders.

A path typed by a user, found in a checkpoints directory, or written in a row of someone's
``predictions.csv`` is data. The rule, the same for all of them:

* the text must be a usable path: no NUL byte, at most ``MAX_PATH_CHARS`` characters and no
  component longer than ``MAX_NAME_BYTES`` bytes (checked before the operating system sees it,
  so that the answer is a sentence and not an ``OSError``);
* resolved with every symlink and ``..`` followed, it must lie inside one of the allowed roots;
* a path read from a file (``confine``) must be relative: an absolute one is refused outright.

``scan_imagefolder`` lists an ImageFolder (``ROOT/<class>/**/<image>``) the way torchvision's
``ImageFolder`` orders it, without its hazards: a directory symlink inside a class folder is not
followed (a link to a parent would loop forever, or count every image many times), and only
regular files are listed (a FIFO blocks the reader forever; a device never ends). What is
skipped is counted, so callers can say so in one line.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255
MAX_FOLDER_FILES = 2_000_000       # a folder that lists more is not a dataset this tool can hold in memory
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's


class UnsafePathError(UserError, ValueError):
    """A path from outside cannot be used; the message says why in one line."""


def shown(text: str, limit: int = 80) -> str:
    """A path as a message may quote it: one line, cut to ``limit`` characters."""
    text = text.replace("\x00", "\\0").replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_text(text: str | os.PathLike) -> str:
    """``text`` if it is a usable path, else UnsafePathError naming what is wrong."""
    text = os.fspath(text)
    if not isinstance(text, str):
        raise UnsafePathError(f"{shown(repr(text))}: a path must be text")
    if "\x00" in text:
        raise UnsafePathError(f"{shown(text)}: a path cannot contain a NUL byte")
    if len(text) > MAX_PATH_CHARS:
        raise UnsafePathError(f"{shown(text)}: the path is {len(text):,} characters long, "
                              f"over the limit of {MAX_PATH_CHARS:,}")
    for part in Path(text).parts:
        try:
            size = len(part.encode("utf-8", "surrogateescape"))
        except UnicodeError:
            raise UnsafePathError(f"{shown(text)}: the path is not valid text") from None
        if size > MAX_NAME_BYTES:
            raise UnsafePathError(f"{shown(text)}: one of its names is {size:,} bytes long, "
                                  f"over the limit of {MAX_NAME_BYTES}")
    return text


def resolve(path: str | os.PathLike) -> Path:
    """``path`` made absolute with every symlink and ``..`` followed; UnsafePathError when it cannot be."""
    try:
        return Path(check_text(path)).resolve()
    except (OSError, RuntimeError) as e:          # RuntimeError: a symlink loop on older Pythons
        raise UnsafePathError(f"{shown(os.fspath(path))}: cannot be resolved ({e.strerror or e})") from None


def is_inside(path: str | os.PathLike, roots) -> bool:
    """Whether ``path``, resolved, is one of ``roots`` (resolved) or lies under one."""
    try:
        target = resolve(path)
        return any(target == r or target.is_relative_to(r) for r in (resolve(root) for root in roots))
    except UnsafePathError:
        return False


def confine(base: str | os.PathLike, relative: str) -> Path:
    """``base / relative`` for a relative path read from a file, resolved, and refused unless inside ``base``."""
    check_text(relative)
    if not relative or Path(relative).is_absolute() or relative.startswith("~"):
        raise UnsafePathError(f"{shown(relative)}: only a path relative to the data folder is allowed")
    root = resolve(base)
    target = resolve(root / relative)
    if not target.is_relative_to(root):
        raise UnsafePathError(f"{shown(relative)}: leads outside the data folder")
    return target


# --------------------------------------------------------------------------- image folders

@dataclass
class FolderListing:
    """An ImageFolder's files in torchvision's order: classes sorted, then files sorted within each."""

    root: Path
    classes: list[str]
    samples: list[tuple[str, int]]                 # (path, class index)
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> count

    @property
    def targets(self) -> list[int]:
        return [t for _, t in self.samples]

    def skipped_note(self) -> str:
        """One line on what was left out, or "" when nothing was."""
        if not self.skipped:
            return ""
        parts = ", ".join(f"{n:,} {reason}" for reason, n in sorted(self.skipped.items()))
        return f"{self.root}: skipped {parts}"


def find_classes(root: str | os.PathLike) -> list[str]:
    """The class folders of an ImageFolder: the directories directly inside ``root``, sorted."""
    root = Path(check_text(root))
    try:
        with os.scandir(root) as entries:
            return sorted(e.name for e in entries if e.is_dir())
    except OSError as e:
        raise UnsafePathError(f"{shown(str(root))}: cannot be listed ({e.strerror or e})") from None


def scan_imagefolder(root: str | os.PathLike, extensions=IMAGE_EXTENSIONS,
                     max_files: int = MAX_FOLDER_FILES) -> FolderListing:
    """List ``root/<class>/**/<image>`` safely (see the module's docstring).

    A class folder may itself be a symlink (datasets are often assembled that way); inside it,
    only real directories are entered. Skipped entries are counted by reason: directory links,
    files that are not regular (FIFOs, devices, sockets, broken links), unreadable folders.
    """
    root = Path(check_text(root))
    classes = find_classes(root)
    listing = FolderListing(root=root, classes=classes, samples=[])

    def skip(reason: str) -> None:
        listing.skipped[reason] = listing.skipped.get(reason, 0) + 1

    for index, name in enumerate(classes):
        def walk_error(_error):
            skip("unreadable folders")
        for folder, dirs, files in sorted(os.walk(root / name, followlinks=False, onerror=walk_error)):
            for d in dirs:
                if os.path.islink(os.path.join(folder, d)):
                    skip("linked folders (not followed)")
            for file in sorted(files):
                if not file.lower().endswith(extensions):
                    continue
                path = os.path.join(folder, file)
                try:
                    mode = os.stat(path).st_mode          # follows a link to a file: datasets use them
                except OSError:
                    skip("broken links or unreadable files")
                    continue
                if not stat.S_ISREG(mode):
                    skip("entries that are not regular files (FIFOs, devices)")
                    continue
                listing.samples.append((path, index))
                if len(listing.samples) > max_files:
                    raise UnsafePathError(f"{shown(str(root))}: more than {max_files:,} image files; "
                                          "not a dataset this tool can hold")
    return listing
