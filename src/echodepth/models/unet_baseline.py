"""The dataset paper's sound-only baseline: the pix2pix U-Net generator (`unet_256` / `unet_128`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..registry import CheckedSettings
from ..settings.bounds import bounded
from .blocks import InputNorm, depth_head, input_layer, resize_to
from .registry import MODELS, DepthModel


@dataclass
class UNetBaselineSettings(CheckedSettings):
    """The baseline's settings (in_channels and image_size come from the run). Its input is the square
    power of two nearest the depth map's side, whatever the run's input_size. Raises ConfigError for a
    width under 1."""

    in_channels: int = 2
    image_size: tuple[int, int] = (128, 128)  # (H, W) of the depth map produced
    # one name with the other networks' width, so that `compare` runs every network at one --base_channels
    base_channels: int = bounded(
        64, above=0, help="unet_baseline: its first layer's filters, pix2pix's ngf (then 2x, 4x, 8x, 8x, ...)"
    )
    input_norm: InputNorm = "centre"  # centre: remove each input position's mean; position: and divide by its std


@MODELS.register("unet_baseline")
class UNetBaseline(DepthModel):
    """pix2pix U-Net: 4x4 stride-2 convs, LeakyReLU(0.2) down, ReLU up, BatchNorm, skips.

    It has `num_downs = log2(input side)` levels (8 for 256 x 256 = `unet_256`, 7 for `unet_128`),
    so its input is resized to a square power of two. pix2pix ends with Tanh for images in
    [-1, 1]; normalised depth is in [0, 1], so the last layer is a sigmoid instead.
    Returns (base, residual, final) like every model: base = final = depth, residual = 0.
    """

    Settings = UNetBaselineSettings
    # the dataset paper trains it with a plain L1 loss: no structural or sparsity term
    compare_settings = {"lambda_base": 0.0, "lambda_sparse": 0.0}
    decomposes = False
    min_image_size = 6  # its input is the nearest power of two, at least 8

    def __init__(self, **settings):
        """Builds the generator of `Settings` (keyword settings; ConfigError for a bad value)."""
        super().__init__()
        cfg = UNetBaselineSettings(**settings)
        cfg.image_size = tuple(cfg.image_size)
        side = max(2 ** round(math.log2(max(cfg.image_size))), 8)
        self.input_size = (side, side)
        self.cfg = cfg
        self.input_norm = input_layer(cfg.input_norm, cfg.in_channels, self.input_size)
        n = int(math.log2(side))
        widths = [cfg.base_channels * min(2**i, 8) for i in range(n)]  # 64, 128, 256, 512, 512, ...
        self.downs = nn.ModuleList()
        for i in range(n):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=True)]
            c_in = cfg.in_channels if i == 0 else widths[i - 1]
            layers.append(nn.Conv2d(c_in, widths[i], 4, stride=2, padding=1, bias=False))
            if 0 < i < n - 1:  # neither the outermost nor the innermost level is normalised
                layers.append(nn.BatchNorm2d(widths[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for i in reversed(range(n)):
            c_in = widths[i] if i == n - 1 else 2 * widths[i]  # innermost has no skip to concatenate
            if i == 0:
                self.ups.append(nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(c_in, 1, 4, 2, 1)))
            else:
                self.ups.append(
                    nn.Sequential(
                        nn.ReLU(True),
                        nn.ConvTranspose2d(c_in, widths[i - 1], 4, 2, 1, bias=False),
                        nn.BatchNorm2d(widths[i - 1]),
                    )
                )

    def forward(self, audio: torch.Tensor):
        """Returns (depth, 0, depth), each (B, 1, H, W) normalised depth (H, W = image_size), of (B, C, F, T)
        features resized to the square input."""
        x = self.input_norm(resize_to(audio, self.input_size))
        skips = []
        for down in self.downs:  # (B, C, s, s) -> (B, C', s/2, s/2)
            x = down(x)
            skips.append(x)
        x = self.ups[0](skips[-1])
        for up, skip in zip(self.ups[1:], reversed(skips[:-1])):
            x = up(torch.cat([skip, x], dim=1))
        depth = depth_head(resize_to(x, self.cfg.image_size))
        return depth, torch.zeros_like(depth), depth

    def parameter_counts(self) -> dict[str, int]:
        """Returns the parameter count of each part and the total."""
        enc = sum(p.numel() for p in self.downs.parameters())
        dec = sum(p.numel() for p in self.ups.parameters())
        return {"encoder": enc, "base_decoder": dec, "residual_decoder": 0, "total": enc + dec}
