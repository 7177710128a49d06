"""echodepth: depth maps from binaural echoes with a base + residual decomposition.

`from echodepth import Predictor` gives the one inference path; it is imported on first use, so
that `import echodepth.synth` (worker processes) does not load torch.
"""

from .version import __version__

__all__ = ["Prediction", "Predictor", "__version__"]


def __getattr__(name: str):
    if name in ("Predictor", "Prediction"):
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'echodepth' has no attribute {name!r}")
