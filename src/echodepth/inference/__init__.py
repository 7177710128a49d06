"""Inference: the one inference path `Predictor` (`predictor`, PyTorch), what a prediction returns
(`prediction`), what a model file is (`model_files`) and `echodepth predict` (`predict`).

    from echodepth.inference import Predictor

`Predictor` is imported on first use: `prediction`, `model_files` and `predict` run without torch
(`echodepth predict --model model.onnx`).
"""

__all__ = ["Prediction", "Predictor"]


def __getattr__(name: str):
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    if name == "Prediction":
        from .prediction import Prediction

        return Prediction
    raise AttributeError(f"module 'echodepth.inference' has no attribute {name!r}")
