"""`echodepth`: this project's own protocol, the one validation and the best-checkpoint choice use."""

from __future__ import annotations

from .base import PROTOCOLS, EvalProtocol


@PROTOCOLS.register("echodepth")
class Echodepth(EvalProtocol):
    """The model's grid and max depth, pixels gt > 0, predictions clamped to 1 mm, a NaN never hidden,
    an image without a valid pixel left out. Its ground truth is the data loader's (nearest-exact at
    the model's grid, clipped to the run's max depth)."""

    name = "echodepth"
    source = "echodepth's own (validation uses it)"
    gt_resize = "the data loader's: nearest-exact at the model's grid, clipped to the run's max depth"
