"""How data and architectures are named to people, with the caveat the shared CIFAR-10 copy needs.

Light on purpose (no torch, no torchvision): the app's cold start imports it, and so do the
model cards and ``metrics.json``'s ``data_note``.
"""

from pathlib import PurePath

from .config import ARCHITECTURES

JPEG_CAVEAT = ("every image re-encoded as JPEG quality 75, so figures are not comparable with the "
               "lossless official CIFAR-10")
JPEG_NOTE = "CIFAR-10, JPEG q75 copy"
GALLERY_SPEC = "app gallery"      # the app's built-in gallery: CIFAR-10 test images from the JPEG copy

ARCH_NAMES = {name: a.title for name, a in ARCHITECTURES.items()}    # the architecture table's titles


def is_jpeg_copy(spec: str) -> bool:
    """Whether a data spec names the shared JPEG q75 copy of CIFAR-10 (or the app's gallery drawn from it)."""
    if spec == GALLERY_SPEC:
        return True
    return spec.startswith("imagefolder:") and PurePath(spec.split(":", 1)[1]).name == "cifar10-jpeg"


def data_note(spec: str) -> str:
    """The short note every accuracy on ``spec`` carries ("" when none is needed)."""
    return JPEG_NOTE if is_jpeg_copy(spec) else ""


def data_description(spec: str, show_path: bool = False) -> str:
    """``spec`` in words; the shared JPEG copy of CIFAR-10 always carries its caveat."""
    if is_jpeg_copy(spec):
        where = "`../shared/datasets/cifar10-jpeg`; " if show_path and spec != GALLERY_SPEC else ""
        return f"{JPEG_NOTE} ({where}{JPEG_CAVEAT})"
    return spec
