"""Specification of ``vitrm.load_image``: any file in, an RGB image or a clear error out."""

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

import vitrm
from testkit.oddfiles import ANIMATED_FIRST_FRAME_RGB, EXIF_ROTATED_STORED_SIZE, declared_png, long_thin_png, odd_files
from vitrm import InvalidImageError, ViTRM, ViTRMConfig, load_image
from vitrm.images import to_model_input

ROOT = Path(__file__).resolve().parents[1]
CORPUS = odd_files()
GOOD = sorted(name for name, (_, ok) in CORPUS.items() if ok)
BAD = sorted(name for name, (_, ok) in CORPUS.items() if not ok)
TRACEBACK_MARKERS = ("Traceback", 'File "', "Error:")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    for name, (data, _) in CORPUS.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def tiny_model():
    return ViTRM(ViTRMConfig(dim=32, heads=2, trained_steps=2, latent_updates=1)).eval()


def test_the_corpus_has_at_least_twenty_kinds_of_good_and_bad_files():
    assert len(GOOD) >= 10 and len(BAD) >= 10 and len(CORPUS) >= 20


@pytest.mark.parametrize("name", GOOD)
def test_every_valid_odd_image_loads_as_rgb_and_feeds_the_model(name, corpus_dir, tiny_model):
    image = load_image(corpus_dir / name)
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    batch = tiny_model.preprocess(image)
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == torch.float32
    assert torch.isfinite(batch).all()
    assert tiny_model(batch).shape == (1, 10)


@pytest.mark.parametrize("name", BAD)
def test_every_bad_file_is_refused_with_a_message_naming_it(name, corpus_dir):
    with pytest.raises(InvalidImageError) as caught:
        load_image(corpus_dir / name)
    message = str(caught.value)
    assert name in message
    assert not any(marker in message for marker in TRACEBACK_MARKERS), message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize("name", BAD)
def test_bad_bytes_are_refused_without_a_file_name_too(name):
    with pytest.raises(InvalidImageError):
        load_image(CORPUS[name][0])


@pytest.mark.parametrize("make_source", [
    pytest.param(lambda path: path, id="Path"),
    pytest.param(lambda path: str(path), id="str"),
    pytest.param(lambda path: path.read_bytes(), id="bytes"),
    pytest.param(lambda path: bytearray(path.read_bytes()), id="bytearray"),
    pytest.param(lambda path: io.BytesIO(path.read_bytes()), id="BytesIO"),
    pytest.param(lambda path: open(path, "rb"), id="open-file"),
])
def test_a_path_bytes_or_binary_file_object_give_the_same_image(make_source, corpus_dir):
    path = corpus_dir / "photo.png"
    source = make_source(path)
    try:
        image = load_image(source)
    finally:
        if hasattr(source, "close"):
            source.close()
    assert image.tobytes() == load_image(path).tobytes()


def test_an_open_file_object_is_named_in_errors(corpus_dir):
    with open(corpus_dir / "truncated.jpg", "rb") as f:
        with pytest.raises(InvalidImageError, match="truncated.jpg"):
            load_image(f)


@pytest.mark.parametrize("source, expected", [
    ("definitely-missing.png", "no such file"),
    (12345, "cannot read an image from a int"),
])
def test_missing_paths_and_wrong_types_are_invalid_images(source, expected):
    with pytest.raises(InvalidImageError, match=expected):
        load_image(source)


def test_a_directory_or_text_mode_file_is_refused(tmp_path):
    with pytest.raises(InvalidImageError, match="not a file"):
        load_image(tmp_path)
    (tmp_path / "x.png").write_text("hello")
    with open(tmp_path / "x.png") as text_file, pytest.raises(InvalidImageError, match="binary"):
        load_image(text_file)


def test_exif_orientation_is_applied(corpus_dir):
    w, h = EXIF_ROTATED_STORED_SIZE
    assert Image.open(corpus_dir / "exif-rotated.jpg").size == (w, h)
    assert load_image(corpus_dir / "exif-rotated.jpg").size == (h, w)


def test_an_animated_gif_gives_its_first_frame(corpus_dir):
    image = load_image(corpus_dir / "animated.gif")
    assert image.getpixel((8, 8)) == ANIMATED_FIRST_FRAME_RGB


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    for mode in ("RGBA", "LA"):
        buf = io.BytesIO()
        clear.convert(mode).save(buf, "PNG")
        assert load_image(buf.getvalue()).getpixel((1, 1)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    buf = io.BytesIO()
    palette.save(buf, "PNG", transparency=0)
    assert load_image(buf.getvalue()).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grey_uses_the_full_eight_bit_range():
    im = Image.new("I;16", (2, 1))
    im.putdata([1000, 5000])
    buf = io.BytesIO()
    im.save(buf, "PNG")
    image = load_image(buf.getvalue())
    assert image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((1, 0)) == (255, 255, 255)


def test_cmyk_jpeg_keeps_its_colour():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).convert("CMYK").save(buf, "JPEG", quality=95)
    r, g, b = load_image(buf.getvalue()).getpixel((8, 8))
    assert r > 150 and g < 90 and b < 90


def test_an_image_whose_metadata_mentions_svg_still_loads():
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("Comment", '<svg xmlns="http://www.w3.org/2000/svg"> traced from a drawing </svg>')
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 128, 0)).save(buf, "PNG", pnginfo=info)
    assert b"<svg" in buf.getvalue()[:1024]
    assert load_image(buf.getvalue()).getpixel((4, 4)) == (0, 128, 0)


def test_the_pixel_limit_is_checked_from_the_header(monkeypatch):
    monkeypatch.setattr(vitrm.images, "MAX_PIXELS", 100)
    assert load_image(long_thin_png(10, 10)).size == (10, 10)
    with pytest.raises(InvalidImageError, match="10x11 pixels, over the limit of 100"):
        load_image(declared_png(10, 11, rows=1))


def test_an_image_over_the_limit_by_one_pixel_is_refused_unread():
    with pytest.raises(InvalidImageError, match="over the limit"):
        load_image(declared_png(vitrm.MAX_PIXELS + 1, 1, rows=1))


def _run_measured(code: str) -> dict:
    """Run ``code`` in a fresh interpreter that prints one JSON line; return it parsed."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_rejecting_a_40000x40000_png_bomb_stays_under_one_gigabyte():
    result = _run_measured("""
        import json, sys
        from testkit.oddfiles import declared_png, peak_rss_mb
        import vitrm
        data = declared_png(40_000, 40_000)
        try:
            vitrm.load_image(data)
            outcome = "loaded"
        except vitrm.InvalidImageError as e:
            outcome = str(e)
        # The whole process's peak, torch included; not ru_maxrss, which Linux carries over
        # from the forked pytest process across exec.
        print(json.dumps({"outcome": outcome, "bytes": len(data), "peak_mb": peak_rss_mb()}))
    """)
    assert result["bytes"] < 10_000
    assert "too large" in result["outcome"] or "over the limit" in result["outcome"]
    assert result["peak_mb"] < 1024, result


def test_an_extreme_strip_is_cropped_before_it_is_resized():
    # A 1 x 2,000,000 strip is under the pixel limit. Resizing its shorter side to 32 first
    # would need a 32 x 64,000,000 image (6 GB); the address-space cap turns that into a failure.
    result = _run_measured("""
        import json, resource, sys
        from testkit.oddfiles import long_thin_png, proc_status_mb
        import vitrm
        from vitrm.images import to_model_input
        cap = int(proc_status_mb("VmSize") * 1024 ** 2) + 1024 ** 3
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        image = vitrm.load_image(long_thin_png(1, 2_000_000))
        print(json.dumps({"size": list(image.size), "shape": list(to_model_input(image, 32).shape)}))
    """)
    assert result == {"size": [1, 2_000_000], "shape": [3, 32, 32]}


def test_model_input_is_the_centre_square_resized():
    image = Image.new("RGB", (96, 32), (0, 0, 255))
    image.paste((255, 0, 0), (32, 0, 64, 32))           # the centre square is red
    pixels = to_model_input(image, 32)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 32, 32)
    assert (pixels[0] == 255).all() and (pixels[2] == 0).all()


def test_a_32x32_rgb_image_passes_through_unchanged():
    data = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8)
    image = Image.fromarray(data.numpy(), "RGB")
    assert torch.equal(to_model_input(image, 32), data.permute(2, 0, 1))


def test_model_input_refuses_what_is_not_a_pil_image():
    with pytest.raises(TypeError, match="load_image"):
        to_model_input(torch.zeros(3, 32, 32), 32)


def _png(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_no_more_decodes_than_the_cap_run_at_once_and_a_held_slot_is_reused_by_its_thread():
    import threading
    import time

    from vitrm.images import MAX_CONCURRENT_DECODES, decode_slot
    release, holding = threading.Event(), threading.Barrier(MAX_CONCURRENT_DECODES + 1)
    done = threading.Event()

    def hold():
        with decode_slot():
            holding.wait(timeout=30)
            release.wait(timeout=30)

    holders = [threading.Thread(target=hold) for _ in range(MAX_CONCURRENT_DECODES)]
    for t in holders:
        t.start()
    holding.wait(timeout=30)               # every slot is taken
    waiter = threading.Thread(target=lambda: (load_image(_png()), done.set()))
    waiter.start()
    time.sleep(0.5)
    assert not done.is_set(), "a decode ran while every slot was held"
    release.set()
    waiter.join(timeout=30)
    assert done.is_set(), "the decode did not run once a slot was free"
    for t in holders:
        t.join(timeout=30)
    # A caller holding a slot around the decode and its reductions does not wait on itself.
    with decode_slot():
        with decode_slot():
            assert load_image(_png()).size == (64, 48)


def test_an_rgb_image_is_decoded_without_a_second_full_size_copy():
    """A decode near MAX_PIXELS must cost about one image (3 bytes a pixel), not three."""
    code = textwrap.dedent("""
        import io
        from PIL import Image
        import vitrm
        buffer = io.BytesIO()
        Image.new("RGB", (4000, 4000), (1, 2, 3)).save(buffer, "PNG")
        data = buffer.getvalue()
        def rss():
            return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
        before = rss()
        image = vitrm.load_image(data)
        print((rss() - before) / (image.size[0] * image.size[1] * 3))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) < 1.6


def test_a_16_bit_grey_strip_is_decoded_in_a_few_bytes_a_pixel():
    """A 16-bit grey strip (the probe's 1x49,000,000 took 980 MB) is scaled to 8 bits chunk by chunk: the image,
    its integer copy, the 8-bit result and the RGB image, not three float copies besides (14 bytes a pixel before).
    docs/reliability.md's memory ceiling assumes at most 15 bytes a pixel."""
    code = textwrap.dedent("""
        import io
        import numpy as np
        from PIL import Image
        import vitrm
        n = 20_000_000
        buffer = io.BytesIO()
        Image.fromarray((np.arange(n, dtype=np.uint32) % 60_000).astype(np.uint16).reshape(1, n)).save(buffer, "PNG")
        data = buffer.getvalue()
        del buffer
        open("/proc/self/clear_refs", "w").write("5")       # the peak from here on
        before = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
        image = vitrm.load_image(data)
        after = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
        assert image.size == (n, 1) and image.getpixel((59_999, 0)) == (255, 255, 255)
        print((after - before) / n)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) < 9
