"""Figures: the base / residual / final / ground-truth decomposition, and curves over seeds."""

from .curves import plot_curves, plot_magnitudes
from .decomposition import decomposition_animation, decomposition_figure, make_decomposition_figure, save_figure

__all__ = [
    "decomposition_animation",
    "decomposition_figure",
    "make_decomposition_figure",
    "plot_curves",
    "plot_magnitudes",
    "save_figure",
]
