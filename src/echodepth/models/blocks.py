"""Building blocks shared by the networks: U-Net convolution blocks and output heads."""

from __future__ import annotations

import typing
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) x 2, keeping the spatial size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            # no bias: the BatchNorm that follows has its own shift
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Upsample by 2, concatenate the encoder skip, then a DoubleConv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, bilinear: bool = True):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Returns (B, out_channels, h, w) from x (B, in_channels, h/2, w/2) and the skip (B, skip_channels, h, w)."""
        x = self.up(x)
        # odd encoder sizes: the upsampled map can be one pixel short of the skip
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Returns x bilinearly resized to `size` (H, W), or x itself when it already has that size.

    Shrinking is antialiased, so that every input column (e.g. STFT frame) counts."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    if shrink and (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
        # exporters know no antialiased resize: the same linear map as two matrix products
        rows = resize_matrix(x.shape[-2], size[0]).to(x)
        cols = resize_matrix(x.shape[-1], size[1]).to(x)
        return torch.matmul(torch.matmul(rows, x), cols.T)
    if shrink and x.dtype == torch.bfloat16 and x.device.type == "cpu":  # no bf16 antialiasing kernel on CPU
        return F.interpolate(x.float(), size=tuple(size), mode="bilinear", antialias=True).to(x.dtype)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """Returns the (n_out, n_in) matrix of the antialiased bilinear resize along one axis (the
    resize is separable: image -> R_h @ image @ R_w^T)."""
    eye = torch.eye(int(n_in), dtype=torch.float64)[None, None]  # column j is the j-th unit vector
    out = F.interpolate(eye, size=(int(n_out), int(n_in)), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].float().contiguous()


# A bounded head's slope vanishes at its bounds (sigmoid'(8) = 3e-4, tanh'(5) = 2e-4), so a pixel pushed
# there early gets no gradient and stays locked (a demo run's top-left residual sat at -5 m for every
# recording). The heads keep their value but pass this share of their steepest slope as a floor.
HEAD_GRADIENT_FLOOR = 0.05


def gradient_floor(bounded: torch.Tensor, logits: torch.Tensor, slope: float) -> torch.Tensor:
    """Returns `bounded` unchanged in value, with d/d logits raised by `slope` everywhere (a
    straight-through term); without autograd (inference) and in exports it is `bounded` itself."""
    if not logits.requires_grad or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return bounded
    return bounded + slope * (logits - logits.detach())


def depth_head(logits: torch.Tensor) -> torch.Tensor:
    """Normalised depth in [0, 1]: sigmoid(logits), with a gradient that never vanishes."""
    return gradient_floor(torch.sigmoid(logits), logits, HEAD_GRADIENT_FLOOR * 0.25)  # sigmoid' <= 1/4


def residual_head(logits: torch.Tensor, bound: float) -> torch.Tensor:
    """Signed residual in (-bound, bound): bound * tanh(logits), with a gradient that never vanishes."""
    return gradient_floor(bound * torch.tanh(logits), logits, HEAD_GRADIENT_FLOOR * bound)  # tanh' <= 1


class PositionStandardiser(nn.Module):
    """Removes every input position's (channel, row, column) mean over recordings and divides by its
    std over recordings (`per_position`) or by one std for the whole image (batch statistics in
    training, running averages over every training batch in evaluation, no learned scale).

    A feature image's layout is fixed: the direct sound fills the same low-frequency, first-frame
    corner of every recording (log magnitude about 1.5 there against 0.02 elsewhere, std across
    recordings 0.2 against 0.015). Uncentred, that corner dominates the first layers and
    the heads' logits at the depth map positions the U-Net skips map it to. Centred, each position
    carries only how this recording differs from the others there.
    (B, C, H, W) -> (B, C, H, W); the statistics are buffers, so checkpoints and exports hold them.
    """

    def __init__(self, channels: int, size: tuple[int, int], per_position: bool = True, eps: float = 1e-5):
        super().__init__()
        self.shape = (channels, *size)
        self.per_position = per_position
        self.eps = eps
        n = channels * size[0] * size[1]
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))
        self.register_buffer("num_batches", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns x (B, C, H, W) centred (and standardised) per position; updates the running statistics
        in training (a batch of one takes them as they are)."""
        flat = x.flatten(1)  # (B, C, H, W) -> (B, C*H*W)
        if self.training and len(x) > 1:  # one recording has no spread: it takes the running statistics
            mean, var = flat.mean(0), flat.var(0, unbiased=False)
            with torch.no_grad():  # the plain mean over every training batch: the input's distribution is fixed
                self.num_batches += 1
                self.running_mean += (mean.detach().float() - self.running_mean) / self.num_batches
                self.running_var += (var.detach().float() - self.running_var) / self.num_batches
        else:
            mean, var = self.running_mean.to(flat.dtype), self.running_var.to(flat.dtype)
        scale = (var if self.per_position else var.mean()) + self.eps
        return ((flat - mean) * scale.rsqrt()).view(-1, *self.shape)


InputNorm = Literal["position", "centre", "none"]  # the input normalisations input_layer() builds
INPUT_NORMS = typing.get_args(InputNorm)


def input_layer(name: str, channels: int, size: tuple[int, int]) -> nn.Module:
    """Returns the input normalisation `name`: "position" (each position centred and standardised),
    "centre" (each position centred, one scale for the image) or "none" (identity: no input normalisation)."""
    if name == "none":
        return nn.Identity()
    return PositionStandardiser(channels, size, per_position=name == "position")
