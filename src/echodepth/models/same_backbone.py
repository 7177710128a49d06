"""The same-backbone control: base + residual's encoder and decoder blocks with one decoder.

Against it, `echodepth compare` isolates the decomposition (two decoders, three losses) from the
backbone: the dataset's U-Net differs in both (strided 4x4 convolutions and a transposed-convolution
decoder against DoubleConv blocks and bilinear upsampling), so a gain over it may be the backbone's.
"""

from __future__ import annotations

from .base_residual import BackboneSettings, BaseResidualNet
from .registry import MODELS


@MODELS.register("same_backbone")
class SameBackboneNet(BaseResidualNet):
    """Returns (depth, 0, depth), each (B, 1, H, W): the encoder, input standardisation and (wide)
    decoder of `base_residual` with its sigmoid depth head, and no residual decoder."""

    # trained as the dataset's U-Net is, with a plain L1 reconstruction loss: no structural or sparsity term
    compare_settings = {"lambda_base": 0.0, "lambda_sparse": 0.0}
    compare_variants: dict[str, dict] = {}
    decomposes = False
    Settings = BackboneSettings  # base + residual's, less the decomposition's (no residual_scale, one decoder)

    def head_bounds(self) -> dict[str, tuple[float, float]]:
        """Returns the depth head's range in normalised depth: [0, 1]."""
        return {"base": (0.0, 1.0)}

    def base_path(self) -> list:
        """Returns no modules: the control has no residual phase to freeze its base for."""
        return []
