"""The design guide's network: one shared encoder, a base decoder and a residual decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import DoubleConv, Up, depth_head, residual_head, resize_to
from .registry import MODELS, DepthModel


@dataclass
class BaseResidualSettings:
    in_channels: int = 2  # left and right ear
    image_size: tuple[int, int] = (128, 128)  # (H, W) of the depth map produced
    input_size: tuple[int, int] | None = None  # inputs are resized to this; None: image_size
    base_channels: int = 64  # 64 gives 29.8M parameters (bilinear)
    bilinear: bool = True  # bilinear upsampling, else transposed convolutions
    residual_scale: float = 0.5  # residual lies in (-residual_scale, residual_scale) x max depth
    base_decoder: str = "wide"  # wide: each level keeps its skip's width; narrow: 2c, c, c/2, c/4


class Decoder(nn.Module):
    """U-Net decoder over the shared encoder's features; one 1x1 conv gives one channel of logits."""

    def __init__(self, widths: list[int], bilinear: bool, out_widths: list[int] | None = None):
        super().__init__()
        # widths = encoder widths from shallow to deep, e.g. [64, 128, 256, 512, 512]; by default
        # each level keeps its skip's width: 512 -> 256 -> 128 -> 64
        skips = list(reversed(widths[:-1]))
        ups = []
        in_ch = widths[-1]
        for skip_ch, out_ch in zip(skips, out_widths or skips):
            ups.append(Up(in_ch, skip_ch, out_ch, bilinear))
            in_ch = out_ch
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(in_ch, 1, kernel_size=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return self.out(x)


@MODELS.register("base_residual")
class BaseResidualNet(DepthModel):
    """Returns (base, residual, final) normalised depth maps, each (B, 1, H, W), final = base + residual.

    base = sigmoid(.) lies in [0, 1]; residual = r * tanh(.) lies in (-r, r) with
    r = residual_scale. Inputs of any size (e.g. 2 x 257 x T spectrograms) are resized
    bilinearly to `input_size` first, and the maps come out at `image_size`.
    """

    Settings = BaseResidualSettings
    # the seed research script's choices: its narrow base decoder, its residual bound
    compare_variants = {"narrow_base": {"base_decoder": "narrow"}, "residual_0.3": {"residual_scale": 0.3}}
    min_image_size = 16  # four 2x poolings leave one pixel

    @classmethod
    def training_settings(cls, cfg) -> dict:
        return {
            "base_channels": cfg.base_channels,
            "bilinear": cfg.bilinear,
            "residual_scale": cfg.residual_scale,
            "base_decoder": cfg.base_decoder,
            "input_size": cfg.input_hw,
        }

    def __init__(self, **settings):
        super().__init__()
        cfg = BaseResidualSettings(**settings)
        cfg.image_size = tuple(cfg.image_size)
        cfg.input_size = tuple(cfg.input_size or cfg.image_size)
        self.cfg = cfg
        c = cfg.base_channels
        # the bottleneck stays at 8c (not 16c): ~30M parameters at c = 64, as the guide states
        widths = [c, 2 * c, 4 * c, 8 * c, 8 * c]
        self.encoder = nn.ModuleList([DoubleConv(cfg.in_channels, widths[0])])
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            self.encoder.append(DoubleConv(w_in, w_out))
        self.pool = nn.MaxPool2d(2)
        # the seed script's narrow base decoder: 128, 64, 32, 16 at c = 64 (the base is smooth)
        narrow = [2 * c, c, max(c // 2, 1), max(c // 4, 1)] if cfg.base_decoder == "narrow" else None
        self.base_decoder = Decoder(widths, cfg.bilinear, narrow)
        self.residual_decoder = Decoder(widths, cfg.bilinear)

    def encode(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """Returns the encoder's feature maps, shallow to deep."""
        x = resize_to(audio, self.cfg.input_size)  # (B, 2, F, T) -> (B, 2, H, W)
        features = [self.encoder[0](x)]
        for block in self.encoder[1:]:
            features.append(block(self.pool(features[-1])))  # (B, C, h, w) -> (B, 2C, h/2, w/2)
        return features

    def forward(self, audio: torch.Tensor):
        features = self.encode(audio)
        size = self.cfg.image_size
        base = depth_head(resize_to(self.base_decoder(features), size))
        residual = residual_head(resize_to(self.residual_decoder(features), size), self.cfg.residual_scale)
        return base, residual, base + residual

    def parameter_counts(self) -> dict[str, int]:
        """Returns the parameter count of each part and the total."""

        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        return {
            "encoder": count(self.encoder),
            "base_decoder": count(self.base_decoder),
            "residual_decoder": count(self.residual_decoder),
            "total": count(self),
        }
