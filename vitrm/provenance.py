"""How a data spec is named to people, with the caveat the shared CIFAR-10 copy needs.

Light on purpose (no torch, no torchvision): the app's cold start imports it, and so do the
model cards.
"""

JPEG_CAVEAT = ("every image re-encoded as JPEG quality 75, so figures are not comparable with the "
               "lossless official CIFAR-10")


def data_description(spec: str, show_path: bool = False) -> str:
    """``spec`` in words; the shared JPEG copy of CIFAR-10 always carries its caveat."""
    if "cifar10-jpeg" in spec:
        where = "`../shared/datasets/cifar10-jpeg`; " if show_path else ""
        return f"CIFAR-10, JPEG q75 copy ({where}{JPEG_CAVEAT})"
    return spec
