"""ViTRM Lab: the Vision Tiny Recursion Model, its trace, and the tools around it.

    import vitrm
    model = vitrm.load("checkpoints/vitrm-cifar10")
    image = vitrm.load_image("cat.jpg")
    trace = model.trace(model.preprocess(image), steps=8)
    trace.probs[:, 0]          # class probabilities after each of the 8 steps
"""

from .baselines import CompactCNN, ViT, vit_config_for
from .checkpoint import CheckpointError, build_model, load, read_config, read_metrics, save
from .images import MAX_PIXELS, InvalidImageError, load_image
from .model import AttentionMaps, Trace, ViTRM, ViTRMConfig, num_parameters
from .sweep import SweepPoint, find_sweeps, flops_per_image

__all__ = [
    "ViTRM", "ViTRMConfig", "Trace", "AttentionMaps", "ViT", "CompactCNN", "vit_config_for",
    "build_model", "load", "save", "read_config", "read_metrics", "CheckpointError",
    "load_image", "InvalidImageError", "MAX_PIXELS", "num_parameters",
    "SweepPoint", "find_sweeps", "flops_per_image",
]
