"""The design guide's network: one shared encoder, a base decoder and a residual decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..registry import CheckedSettings
from ..settings.bounds import bounded
from ..settings.search_space import searched
from .blocks import DoubleConv, InputNorm, Up, depth_head, input_layer, residual_head, resize_to
from .registry import MODELS, DepthModel


@dataclass
class BackboneSettings(CheckedSettings):
    """The settings of the U-Net backbone that base + residual and the same-backbone control share
    (in_channels, image_size and input_size come from the run). Raises ConfigError for a width under 1."""

    in_channels: int = 2  # left and right ear
    image_size: tuple[int, int] = (128, 128)  # (H, W) of the depth map produced
    input_size: tuple[int, int] | None = None  # inputs are resized to this; None: image_size
    base_channels: int = bounded(64, above=0)  # the first encoder level's channels (then 2x, 4x, 8x, 8x)
    bilinear: bool = True  # bilinear upsampling in the decoders, else transposed convolutions
    input_norm: InputNorm = "centre"  # centre: remove each input position's mean; position: and divide by its std


@dataclass
class BaseResidualSettings(BackboneSettings):
    """The backbone's settings and the decomposition's; raises ConfigError for a residual bound <= 0."""

    residual_scale: float = bounded(0.5, above=0)  # the residual lies in (-residual_scale, residual_scale) x max depth
    # at 64 channels: wide 29.8M, narrow 21.3M, seed 20.2M parameters
    base_decoder: Literal["wide", "narrow", "seed"] = searched(
        "wide",
        choices=("wide", "narrow", "seed"),
        help="the base decoder's widths: wide, the skips'; narrow, 2c, c, c/2, c/4; seed, the seed code",
    )
    base_resolution: Literal[1, 2, 4, 8] = searched(
        1, choices=(1, 2, 4), help="the base decoder stops at 1/k of the map, then bilinear upsampling"
    )


class Decoder(nn.Module):
    """U-Net decoder over the shared encoder's maps; one 1x1 conv gives one channel of logits.

    widths: the encoder's, shallow to deep (e.g. [64, 128, 256, 512, 512]). By default each level
    keeps its skip's width (512 -> 256 -> 128 -> 64); `out_widths` narrows the levels, `taken` maps
    the bottleneck and each skip through a 1x1 convolution to that many channels first (so a narrow
    decoder does not pay for full-width skips), and `levels` stops after that many upsamplings.
    """

    def __init__(self, widths, bilinear, *, out_widths=None, taken=None, levels: int | None = None):
        super().__init__()
        skips = list(reversed(widths[:-1]))
        taken = list(taken) if taken else None
        self.project = nn.ModuleList(
            [nn.Conv2d(w, t, kernel_size=1) for w, t in zip(reversed(widths), taken)] if taken else []
        )
        skip_in = taken[1:] if taken else skips
        ups = []
        in_ch = taken[0] if taken else widths[-1]
        for skip_ch, out_ch in list(zip(skip_in, out_widths or skips))[:levels]:
            ups.append(Up(in_ch, skip_ch, out_ch, bilinear))
            in_ch = out_ch
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(in_ch, 1, kernel_size=1)

    def forward(self, encoder_maps: list[torch.Tensor]) -> torch.Tensor:
        """Returns (B, 1, h, w) logits from the encoder maps (shallow to deep); h, w: the skip level
        `levels` upsamplings above the bottleneck (the full input size with every level)."""
        deep_first = list(reversed(encoder_maps))  # bottleneck, then the skips from deep to shallow
        if len(self.project):
            deep_first = [p(f) for p, f in zip(self.project, deep_first)]
        x = deep_first[0]
        for up, skip in zip(self.ups, deep_first[1:]):
            x = up(x, skip)
        return self.out(x)


def base_decoder_shape(kind: str, c: int) -> dict:
    """Returns the Decoder arguments of a base decoder kind at base channels c.

    seed: the seed research code's base decoder, about 1/17 of the residual decoder's parameters (its
    notes: 0.4M against 6.8M): the bottleneck and skips taken at a quarter of their widths through 1x1
    convolutions, levels of 3c/2, c, c/2, c/4 channels (0.63M against 10.18M at c = 64: 1/16).
    """
    quarter = [max(w // 4, 1) for w in (8 * c, 8 * c, 4 * c, 2 * c, c)]  # bottleneck first
    return {
        "wide": {},
        "narrow": {"out_widths": [2 * c, c, max(c // 2, 1), max(c // 4, 1)]},
        "seed": {"out_widths": [3 * c // 2, c, max(c // 2, 1), max(c // 4, 1)], "taken": quarter},
    }[kind]


@MODELS.register("base_residual")
class BaseResidualNet(DepthModel):
    """Returns (base, residual, final) normalised depth maps, each (B, 1, H, W), final = base + residual.

    base = sigmoid(.) lies in [0, 1]; residual = r * tanh(.) lies in (-r, r) with
    r = residual_scale. Inputs of any size (e.g. 2 x 257 x T spectrograms) are resized
    bilinearly to `input_size` first, and the maps come out at `image_size`.
    """

    Settings = BaseResidualSettings
    # the seed research script's choices: its narrow base decoder, its residual bound
    compare_variants = {
        "narrow_base": {"base_decoder": "narrow"},
        "residual_0.3": {"residual_scale": 0.3},
        # the seed code's fix for a collapsed residual: its base decoder size, its loss defaults (seed_defaults)
        # with the adaptive warm-up over the preset's warmup_epochs (its 50 epochs would outlast a 12-epoch run),
        # and a last phase (here the last 3 epochs) where only the residual decoder trains
        "seed_fix": {
            "base_decoder": "seed",
            "loss": "adaptive",
            "lambda_base": 1.2,
            "lambda_sparse": 0.05,
            "lowpass_kernel": 16,
            "freeze_base_epochs": 3,
        },
        "base_quarter": {"base_resolution": 4},  # a base decoder at 1/4 of the map, bilinear upsampling
    }
    min_image_size = 16  # four 2x poolings leave one pixel

    def __init__(self, **settings):
        """Builds the network of `Settings` (keyword settings; ConfigError for a bad value)."""
        super().__init__()
        cfg = BaseResidualSettings(**settings)
        cfg.image_size = tuple(cfg.image_size)
        cfg.input_size = tuple(cfg.input_size or cfg.image_size)
        self.cfg = cfg
        c = cfg.base_channels
        self.input_norm = input_layer(cfg.input_norm, cfg.in_channels, cfg.input_size)
        # the bottleneck stays at 8c (not 16c): ~30M parameters at c = 64, as the guide states
        widths = [c, 2 * c, 4 * c, 8 * c, 8 * c]
        self.encoder = nn.ModuleList([DoubleConv(cfg.in_channels, widths[0])])
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            self.encoder.append(DoubleConv(w_in, w_out))
        self.pool = nn.MaxPool2d(2)
        # the base is smooth: a narrower decoder (narrow, seed) or fewer levels (base_resolution) suffice
        levels = 4 - (cfg.base_resolution.bit_length() - 1)  # 1/k of the map: log2(k) upsamplings fewer
        self.base_decoder = Decoder(widths, cfg.bilinear, levels=levels, **base_decoder_shape(cfg.base_decoder, c))
        # the same-backbone control (same_backbone.py) has the one decoder only
        self.residual_decoder = Decoder(widths, cfg.bilinear) if self.decomposes else None

    def encode(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """Returns the encoder's maps (the decoders' skips) of a (B, C, F, T) input, shallow to deep:
        (B, c * 2**i, H / 2**i, W / 2**i) with (H, W) = input_size (the deepest two both 8c wide)."""
        x = self.input_norm(resize_to(audio, self.cfg.input_size))  # (B, 2, F, T) -> (B, 2, H, W)
        encoder_maps = [self.encoder[0](x)]
        for block in self.encoder[1:]:
            encoder_maps.append(block(self.pool(encoder_maps[-1])))  # (B, C, h, w) -> (B, 2C, h/2, w/2)
        return encoder_maps

    def forward(self, audio: torch.Tensor):
        """Returns (base, residual, final), each (B, 1, H, W) normalised depth (H, W = image_size), of
        (B, C, F, T) feature images; residual is 0 without a residual decoder."""
        encoder_maps = self.encode(audio)
        size = self.cfg.image_size
        # a reduced-resolution base is upsampled bilinearly (smooth) by resize_to
        base = depth_head(resize_to(self.base_decoder(encoder_maps), size))
        if self.residual_decoder is None:
            return base, torch.zeros_like(base), base
        residual = residual_head(resize_to(self.residual_decoder(encoder_maps), size), self.cfg.residual_scale)
        return base, residual, base + residual

    def head_bounds(self) -> dict[str, tuple[float, float]]:
        """Returns each head's range in normalised depth: base [0, 1], residual (-r, r)."""
        return {"base": (0.0, 1.0), "residual": (-self.cfg.residual_scale, self.cfg.residual_scale)}

    def base_path(self) -> list[nn.Module]:
        """Returns the input standardisation, the shared encoder and the base decoder: frozen, they
        keep the base fixed while the residual decoder trains."""
        return [self.input_norm, self.encoder, self.base_decoder]

    def parameter_counts(self) -> dict[str, int]:
        """Returns the parameter count of each part and the total."""

        def count(module: nn.Module | None) -> int:
            return sum(p.numel() for p in module.parameters()) if module is not None else 0

        return {
            "encoder": count(self.encoder),
            "base_decoder": count(self.base_decoder),
            "residual_decoder": count(self.residual_decoder),
            "total": count(self),
        }
