"""A corpus of odd and bad image files, generated on the fly (nothing is stored in git).

``odd_files()`` returns ``{file name: (bytes, should_load)}``. Files with ``should_load``
True are real images in unusual encodings that ``vitrm.load_image`` must turn into RGB;
the rest must be refused with ``vitrm.InvalidImageError``. Each name carries the extension
a user would have given it, so documents hide under image names as they do in the wild.

Used by the library's tests and by the app's "one upload with good and bad files" test.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

from PIL import Image

# Sizes whose decoded form the tests check.
EXIF_ROTATED_STORED_SIZE = (48, 24)     # stored landscape, EXIF orientation 6 makes it portrait
ANIMATED_FIRST_FRAME_RGB = (255, 0, 0)  # first frame red, second blue
BOMB_SIDE = 40_000                      # 1.6 gigapixels declared, a few hundred bytes on disk


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A smooth colour ramp, so that lossy encoders and rotations have something to show."""
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(255 * x // max(w - 1, 1), 255 * y // max(h - 1, 1), 128) for y in range(h) for x in range(w)])
    return im.convert(mode)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def declared_png(width: int, height: int, rows: int = 4) -> bytes:
    """A greyscale PNG whose header declares ``width`` x ``height`` but whose IDAT holds only
    ``rows`` zero rows: a decompression bomb's header on a file of a few hundred bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (b"\x00" + b"\x00" * width) * rows
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def long_thin_png(width: int, height: int) -> bytes:
    """A complete, valid all-black greyscale PNG of any size, cheap to build for thin shapes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * ((width + 1) * height), 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6            # orientation: rotate 90 degrees clockwise to display
    return _encode(_gradient(EXIF_ROTATED_STORED_SIZE), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), ANIMATED_FIRST_FRAME_RGB), Image.new("RGB", (16, 16), (0, 0, 255))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_with_transparency() -> bytes:
    im = _gradient((20, 20)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(im, "PNG", transparency=0)


def _png16() -> bytes:
    im = Image.new("I;16", (20, 12))
    im.putdata([(x * 3000 + y * 100) % 65536 for y in range(12) for x in range(20)])
    return _encode(im, "PNG")


def _tiff16() -> bytes:
    im = Image.new("I;16", (10, 10))
    im.putdata([i * 600 for i in range(100)])
    return _encode(im, "TIFF")


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photo.png", _encode(_gradient((8, 8)), "PNG"))
    return buf.getvalue()


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
       b'<rect width="32" height="32" fill="red"/></svg>\n')
HTML = b"<!DOCTYPE html>\n<html><body><img src='cat.jpg'></body></html>\n"


def odd_files() -> dict[str, tuple[bytes, bool]]:
    rng = random.Random(0)
    jpeg = _encode(_gradient((64, 48)), "JPEG", quality=90)
    png = _encode(_gradient((64, 48)), "PNG")
    return {
        # not images at all
        "empty.png": (b"", False),
        "random.jpg": (bytes(rng.getrandbits(8) for _ in range(4096)), False),
        "notes.png": (b"These are my holiday notes, not a picture.\n" * 20, False),
        "document.jpg": (_pdf(), False),
        "archive.png": (_zip(), False),
        "drawing.png": (SVG, False),
        "bare-drawing.svg": (SVG.split(b"\n", 1)[1], False),
        "page.jpg": (HTML, False),
        "program.png": (b"\x7fELF\x02\x01\x01" + bytes(200), False),
        # broken images
        "truncated.jpg": (jpeg[: len(jpeg) // 2], False),
        "truncated.png": (png[: len(png) // 2], False),
        "signature-only.png": (png[:8], False),
        "jpeg-header-then-noise.jpg": (b"\xff\xd8\xff\xe0" + bytes(rng.getrandbits(8) for _ in range(512)), False),
        # bombs and huge dimensions: refused from the header, before decoding
        "bomb-40000x40000.png": (declared_png(BOMB_SIDE, BOMB_SIDE), False),
        "huge-9000x9000.png": (declared_png(9000, 9000), False),
        # unusual but valid encodings
        "tiny-1x1.png": (_encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), True),
        "tall-1x5000.png": (long_thin_png(1, 5000), True),
        "wide-5000x1.png": (long_thin_png(5000, 1), True),
        "grey.png": (_encode(_gradient((20, 10), "L"), "PNG"), True),
        "grey-alpha.png": (_encode(_gradient((20, 10), "LA"), "PNG"), True),
        "rgba.png": (_encode(_gradient((20, 10), "RGBA"), "PNG"), True),
        "palette-transparent.png": (_palette_with_transparency(), True),
        "depth16.png": (_png16(), True),
        "cmyk.jpg": (_encode(_gradient((24, 16), "CMYK"), "JPEG"), True),
        "exif-rotated.jpg": (_exif_rotated_jpeg(), True),
        "grey.jpg": (_encode(_gradient((24, 16), "L"), "JPEG"), True),
        "animated.gif": (_animated_gif(), True),
        "photo.webp": (_encode(_gradient((24, 16)), "WEBP"), True),
        "photo.bmp": (_encode(_gradient((24, 16)), "BMP"), True),
        "photo.tiff": (_encode(_gradient((24, 16)), "TIFF"), True),
        "depth16.tiff": (_tiff16(), True),
        "photo.jpg": (jpeg, True),
        "photo.png": (png, True),
    }


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM, VmSize, ...), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_rss_mb() -> float:
    """This process's peak resident memory since exec (VmHWM), in MiB."""
    return proc_status_mb("VmHWM")


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    return proc_status_mb("VmRSS")
