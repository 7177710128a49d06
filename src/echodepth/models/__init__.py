"""Networks built by name: `build_model("base_residual", base_channels=32)`.

Every model maps a (B, C, F, T) input to a tuple (base, residual, final) of (B, 1, H, W)
normalised depth maps with final == base + residual, so training, evaluation and plots treat
all models alike. Importing this package registers the built-in models.
"""

from . import base_residual, same_backbone, unet_baseline  # noqa: F401  (registers the built-in models)
from .base_residual import BaseResidualNet, BaseResidualSettings
from .registry import MODELS, DepthModel, build_model, build_model_for_training, parameter_counts
from .same_backbone import SameBackboneNet
from .unet_baseline import UNetBaseline, UNetBaselineSettings

__all__ = [
    "MODELS",
    "BaseResidualNet",
    "BaseResidualSettings",
    "DepthModel",
    "SameBackboneNet",
    "UNetBaseline",
    "UNetBaselineSettings",
    "build_model",
    "build_model_for_training",
    "parameter_counts",
]
