"""Deployment: exported models (ONNX, TorchScript) and long recordings with many chirps.

`runtime` and `chirps` do not import torch; `frontend` and `export` do (import them directly)."""

from .runtime import ExportedModel, load_model

__all__ = ["ExportedModel", "load_model"]
