"""Building blocks shared by the networks: U-Net convolution blocks and output heads."""

from __future__ import annotations

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
# there early gets no gradient and stays locked (issue 20: the demo's top-left residual sat at -5 m for
# every recording). The heads keep their value but pass this share of their steepest slope as a floor.
HEAD_GRADIENT_FLOOR = 0.05


def gradient_floor(bounded: torch.Tensor, logits: torch.Tensor, slope: float) -> torch.Tensor:
    """Returns `bounded` unchanged in value, with d/d logits raised by `slope` everywhere (a
    straight-through term); without autograd (inference, export) it is `bounded` itself."""
    if not logits.requires_grad:
        return bounded
    return bounded + slope * (logits - logits.detach())


def depth_head(logits: torch.Tensor) -> torch.Tensor:
    """Normalised depth in [0, 1]: sigmoid(logits), with a gradient that never vanishes."""
    return gradient_floor(torch.sigmoid(logits), logits, HEAD_GRADIENT_FLOOR * 0.25)  # sigmoid' <= 1/4


def residual_head(logits: torch.Tensor, bound: float) -> torch.Tensor:
    """Signed residual in (-bound, bound): bound * tanh(logits), with a gradient that never vanishes."""
    return gradient_floor(bound * torch.tanh(logits), logits, HEAD_GRADIENT_FLOOR * bound)  # tanh' <= 1


class PositionStandardiser(nn.Module):
    """Standardises every input position (channel, row, column) by its mean and std over recordings
    (batch statistics in training, running averages in evaluation, no learned scale).

    A feature image's layout is fixed: the direct sound fills the same low-frequency, first-frame
    corner of every recording (log magnitude about 1.5 there against 0.02 elsewhere, std across
    recordings 0.2 against 0.01; issue 20). Unstandardised, that corner dominates the first layers
    and the heads' logits at the depth map positions the U-Net skips map it to. Standardised, each
    position carries only how this recording differs from the others there.
    (B, C, H, W) -> (B, C, H, W); the statistics are buffers, so checkpoints and exports hold them.
    """

    def __init__(self, channels: int, size: tuple[int, int]):
        super().__init__()
        self.shape = (channels, *size)
        # momentum None: the running statistics are the plain mean over every training batch, exact for
        # inputs whose distribution training does not change (unlike a hidden layer's)
        self.norm = nn.BatchNorm1d(channels * size[0] * size[1], affine=False, momentum=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)  # (B, C, H, W) -> (B, C*H*W)
        if self.training and len(x) < 2:  # one recording has no spread: use the running statistics
            n = self.norm
            return F.batch_norm(flat, n.running_mean, n.running_var, training=False, eps=n.eps).view(-1, *self.shape)
        return self.norm(flat).view(-1, *self.shape)


def input_layer(name: str, channels: int, size: tuple[int, int]) -> nn.Module:
    """Returns the input normalisation `name`: "position" (PositionStandardiser) or "none" (identity,
    echodepth 0.3's networks)."""
    return PositionStandardiser(channels, size) if name == "position" else nn.Identity()
