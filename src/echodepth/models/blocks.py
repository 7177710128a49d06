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


def depth_head(logits: torch.Tensor) -> torch.Tensor:
    """Normalised depth in [0, 1]: sigmoid(logits)."""
    return torch.sigmoid(logits)


def residual_head(logits: torch.Tensor, bound: float) -> torch.Tensor:
    """Signed residual in (-bound, bound): bound * tanh(logits)."""
    return bound * torch.tanh(logits)
