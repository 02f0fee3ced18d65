"""ViTRM Lab: the Vision Tiny Recursion Model, its trace, and the tools around it.

    import vitrm
    model = vitrm.load("checkpoints/vitrm-cifar10")
    image = vitrm.load_image("cat.jpg")
    trace = model.trace(model.preprocess(image), steps=8)
    trace.probs[:, 0]          # class probabilities after each of the 8 steps

Everything in ``__all__`` is the public API (the app uses nothing else). ``vitrm.analysis``
holds the rules that evaluation and the app share: the halting rule, per-step statistics,
metrics assembly, class directions and normalization.
"""

from . import analysis, edits, ood, paths, projection, sidefiles, steps
from .analysis import normalize
from .attribution import METHODS as ATTRIBUTION_METHODS, Attribution, attribute
from .baselines import CNNConfig, CompactCNN, ViT, ViTConfig, vit_config_for
from .checkpoint import (
    CONFIG as CONFIG_FILE,
    WEIGHTS as WEIGHTS_FILE,
    CheckpointError,
    averaged_runs,
    build_model,
    earlier_stages,
    load,
    predictions_file,
    read_config,
    read_metrics,
    read_predictions,
    save,
)
from .compare import DISAGREEMENTS, KINDS as COMPARISON_KINDS, Comparison, ComparisonError, compare_predictions
from .data import Split
from .errors import UserError
from .evaluate import evaluate_split
from .images import (
    MAX_PIXELS,
    InvalidImageError,
    decode_slot,
    load_image,
    read_file as read_image_file,
    to_model_input,
)
from .model import AttentionMaps, ModelConfig, Trace, ViTRM, ViTRMConfig, num_parameters
from .provenance import ARCH_NAMES, GALLERY_SPEC, data_description, data_note
from .serving import TraceBatcher
from .sweep import (
    EXPLANATION as SWEEP_EXPLANATION,
    ModelPoint,
    PointFiles,
    SweepPoint,
    find_sweeps,
    flops_per_image,
    model_points,
    read_point_files,
)

__all__ = [
    # the models, their configs (one per architecture) and the trace
    "ViTRM", "ViTRMConfig", "Trace", "AttentionMaps", "ViT", "ViTConfig", "CompactCNN", "CNNConfig",
    "ModelConfig", "vit_config_for", "num_parameters",
    # serving traces to many threads at once, batched
    "TraceBatcher",
    # checkpoints
    "build_model", "load", "save", "read_config", "read_metrics", "read_predictions", "predictions_file",
    "earlier_stages", "averaged_runs", "CONFIG_FILE", "WEIGHTS_FILE",
    # images and their preparation
    "load_image", "read_image_file", "to_model_input", "normalize", "MAX_PIXELS", "decode_slot",
    # the one confinement rule for outside paths, and the safe walk of image folders
    "paths",
    # the files beside the weights, read as untrusted data (caps and schemas)
    "sidefiles",
    # what-if edits of an image, and a test set's answers on one 2-D map over the steps (projection.safetensors)
    "edits", "projection",
    # the step policy: the default (2N), the most (4N), the flags' check
    "steps",
    # analysis, attribution, and the trained-N sweep
    "analysis", "ood", "attribute", "Attribution", "ATTRIBUTION_METHODS",
    "SweepPoint", "find_sweeps", "flops_per_image", "SWEEP_EXPLANATION", "ModelPoint", "model_points",
    "PointFiles", "read_point_files",
    # two checkpoints' answers on the same images
    "compare_predictions", "Comparison", "COMPARISON_KINDS", "DISAGREEMENTS",
    # evaluation: a split's images and labels through steps 1..S, as the evaluate command and the app run it
    "Split", "evaluate_split",
    # naming data and architectures for people
    "data_description", "data_note", "ARCH_NAMES", "GALLERY_SPEC",
    # errors a user can fix
    "UserError", "CheckpointError", "InvalidImageError", "ComparisonError",
]
