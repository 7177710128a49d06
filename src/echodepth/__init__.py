"""echodepth: depth maps from binaural echoes with a base + residual decomposition."""

__version__ = "0.1.0"
