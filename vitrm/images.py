"""Any image file -> an RGB PIL image, or an error message fit to show an end user.

Uploads come from phones, scanners and the web, so this module is strict about what it
accepts and explicit about why it refuses:

* The pixel limit ``MAX_PIXELS`` is checked from the header, before any pixel is decoded,
  so a decompression bomb never allocates its full size.
* Only raster formats Pillow decodes natively are accepted (PNG, JPEG, WebP, BMP, TIFF, GIF).
  SVG, PDF and anything else are refused by name.
* EXIF orientation is applied, CMYK and 16-bit images are converted, transparency is
  composited on white, and only the first frame of an animation is used.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

MAX_PIXELS = 50_000_000           # about 7000x7000; larger files are refused unread
# Pillow's JPEG opener also returns the MPO files that phones write, so "MPO" needs no entry
# (and naming it makes Image.open raise KeyError: MPO has no opener of its own).
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
MAX_FILE_BYTES = 200 * 1024 * 1024
# A decode of an image near MAX_PIXELS holds a few hundred MB for a moment; many at once (a class
# uploading together) would add up. At most this many decodes run at once in a process; the others wait.
MAX_CONCURRENT_DECODES = max(1, int(os.environ.get("VITRM_MAX_DECODES", "2")))
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
_HELD = threading.local()

Source = str | os.PathLike | bytes | bytearray | BinaryIO


class InvalidImageError(UserError, ValueError):
    """The input is not an image this tool can read. ``str(e)`` is safe to show a user."""


def _read_bytes(source: Source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "the uploaded data"
    if isinstance(source, (str, os.PathLike)):
        from .paths import UnsafePathError, check_text, shown
        try:
            path = Path(check_text(source))
        except UnsafePathError as e:
            raise InvalidImageError(str(e)) from None
        name = shown(path.name)
        try:
            if not path.exists():
                raise InvalidImageError(f"{name}: no such file")
            if not path.is_file():      # a FIFO would block the read forever, a device never end
                raise InvalidImageError(f"{name}: not a file")
            # Read at most one byte past the limit: /proc files and others report a size of 0.
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise InvalidImageError(f"{name}: cannot be read ({e.strerror or e})") from None
        if len(data) > MAX_FILE_BYTES:
            raise InvalidImageError(f"{name}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return data, name
    if hasattr(source, "read"):
        name = Path(str(getattr(source, "name", "the uploaded file") or "the uploaded file").replace("\x00", "")).name
        data = source.read(MAX_FILE_BYTES + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidImageError(f"{name}: expected a binary file, got text")
        if len(data) > MAX_FILE_BYTES:
            raise InvalidImageError(f"{name}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return bytes(data), name
    raise InvalidImageError(f"cannot read an image from a {type(source).__name__}")


def read_file(path: str | os.PathLike) -> bytes:
    """A file's bytes, read as ``load_image`` reads them (bounded; a FIFO or device is refused), or
    ``InvalidImageError`` saying why not."""
    return _read_bytes(Path(path) if not isinstance(path, Path) else path)[0]


def _sniff_non_image(data: bytes) -> str | None:
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    low = head.lower()
    if low.startswith(b"<?xml") or b"<svg" in low:
        return "an SVG or XML file (vector images are not supported)"
    if low.startswith(b"<!doctype html") or low.startswith(b"<html"):
        return "an HTML page"
    return None


def load_image(source: Source) -> Image.Image:
    """Return an RGB ``PIL.Image`` from a path, bytes or binary file object.

    Raises ``InvalidImageError`` for anything that is not a supported image, including
    empty, truncated or random bytes, documents under an image name, and images over
    ``MAX_PIXELS`` pixels.
    """
    data, name = _read_bytes(source)
    if not data:
        raise InvalidImageError(f"{name}: the file is empty")
    with decode_slot():
        return _decode(data, name)


@contextlib.contextmanager
def decode_slot() -> Iterator[None]:
    """Hold one of the ``MAX_CONCURRENT_DECODES`` decode slots of this process (waiting for one if need be).

    ``load_image`` takes one for its decode. A caller that keeps the full-size image to reduce it (to a
    thumbnail and the model's input) holds a slot around all of it, so that the full-size images alive at
    once stay within the cap; ``load_image`` inside reuses the slot its thread holds.
    """
    if getattr(_HELD, "depth", 0):
        _HELD.depth += 1
        try:
            yield
        finally:
            _HELD.depth -= 1
        return
    with _DECODES:
        _HELD.depth = 1
        try:
            yield
        finally:
            _HELD.depth = 0


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns (and at 2x errors) about bombs; we enforce our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
            width, height = im.size
            if width < 1 or height < 1:
                raise InvalidImageError(f"{name}: the image has no pixels ({width}x{height})")
            if width * height > MAX_PIXELS:
                raise InvalidImageError(
                    f"{name}: the image is {width}x{height} pixels, over the limit of "
                    f"{MAX_PIXELS:,} pixels. Resize it and try again.")
            im.seek(0)          # first frame of an animation
            im.load()
            ImageOps.exif_transpose(im, in_place=True)     # no second full-size copy
            return _to_rgb(im)
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        # Only now say what it is, so an image whose metadata mentions "<svg" still loads.
        kind = _sniff_non_image(data)
        if kind:
            raise InvalidImageError(f"{name}: this is {kind}, not an image. "
                                    "Use PNG, JPEG, WebP, BMP, TIFF or GIF.") from None
        raise InvalidImageError(f"{name}: not a recognised image file. "
                                "Use PNG, JPEG, WebP, BMP, TIFF or GIF.") from None
    except Image.DecompressionBombError:
        raise InvalidImageError(f"{name}: the image is too large to open safely") from None
    except Exception as e:  # noqa: BLE001
        # Decoders fed hostile bytes fail in many ways (OSError, SyntaxError, struct.error,
        # KeyError, IndexError, ZeroDivisionError...); every one means "this file is unusable".
        detail = _short(e)
        # The decoder's own words only when they add something: "(Truncated File Read)" repeats "truncated".
        raise InvalidImageError(f"{name}: the image file is damaged or truncated"
                                + ("" if "truncated" in detail.lower() else f" ({detail})")) from None


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:120]


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = _grey_to_8_bits(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGB" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    if im.mode == "F":
        im = im.convert("L")
    # An RGB image is returned as it is: converting it would copy every pixel.
    return im if im.mode == "RGB" else im.convert("RGB")


_SCALE_CHUNK = 2**20                # pixels scaled at a time: float temporaries of 4 MB, whatever the image


def _grey_to_8_bits(im: Image.Image) -> Image.Image:
    """16/32-bit grey scaled to 8 bits by the actual range, not by clipping at 255.

    In chunks: scaling the whole image in float32 at once held three float copies beside it (a 1x49,000,000
    16-bit PNG took 980 MB, 20 bytes a pixel); chunk by chunk the float temporaries stay at 4 MB and the
    decode costs the image, its integer copy and the 8-bit result (tests/test_images.py).
    """
    import numpy as np
    values = np.asarray(im).reshape(-1)            # uint16 or int32: 2 or 4 bytes a pixel
    lo, hi = float(values.min()), float(values.max())
    out = np.zeros(values.size, dtype=np.uint8)
    if hi > lo:
        for start in range(0, values.size, _SCALE_CHUNK):
            chunk = values[start:start + _SCALE_CHUNK].astype(np.float32)
            chunk -= lo
            chunk /= hi - lo
            chunk *= 255.0
            out[start:start + _SCALE_CHUNK] = chunk.round()
    del values
    return Image.fromarray(out.reshape(im.size[1], im.size[0]), "L")


def to_model_input(image: Image.Image, size: int) -> torch.Tensor:
    """RGB uint8 tensor [3, size, size]: the centre square, resized to ``size`` (bicubic, antialiased).

    Equivalent to resizing the shorter side to ``size`` and cropping the centre, but the crop
    is taken first, in the image's own pixels, so a 1x5,000,000 strip costs 32x32, not
    32x160,000,000. Non-RGB images (grey, 16-bit, alpha, palette) are converted as
    ``load_image`` converts them.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}; use vitrm.load_image first")
    image = _to_rgb(image)
    w, h = image.size
    if (w, h) != (size, size):
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        image = image.resize((size, size), Image.Resampling.BICUBIC,
                             box=(left, top, left + side, top + side), reducing_gap=3.0)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return pixels.permute(2, 0, 1).contiguous()
