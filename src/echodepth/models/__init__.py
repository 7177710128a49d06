"""Networks built by name: `build_model("base_residual", base_channels=32)`.

Every model maps a (B, 2, F, T) input to a tuple (base, residual, final) of (B, 1, H, W) maps
with final == base + residual, so training, evaluation and plots treat all models alike.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .base_residual import BaseResidualConfig, BaseResidualNet
from .unet_baseline import UNetBaseline, UNetBaselineConfig

MODELS: dict[str, Callable[..., nn.Module]] = {
    "base_residual": BaseResidualNet,
    "unet_baseline": UNetBaseline,
}


def build_model(name: str, **settings) -> nn.Module:
    """Returns a new model of the registered `name`, configured by keyword settings."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name](**settings)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Returns the parameter count per part (encoder, base_decoder, residual_decoder, total)."""
    return model.parameter_counts()


__all__ = [
    "MODELS",
    "BaseResidualConfig",
    "BaseResidualNet",
    "UNetBaseline",
    "UNetBaselineConfig",
    "build_model",
    "parameter_counts",
]
