"""The feature extraction as plain convolutions and matrix products, for exporters.

`AudioFeatures` computes `torch.stft` and an antialiased resize, which ONNX cannot express (the
resize's antialiasing) or expresses only in newer opsets. For a fixed recording length both are
linear maps, so `LinearFrontend` rebuilds them from fixed weights:
- the STFT: a 1-D convolution whose kernels are the windowed cosines and sines (only the
  win_length samples where the Hann window is not zero), stride hop_length, after the same
  reflect padding of n_fft / 2 samples that `torch.stft(center=True)` applies;
- the mel bands: a matrix product with the same filterbank;
- the binaural cue features (`data.binaural`): their own `from_stft` on the convolution's real
  and imaginary parts;
- the waveform feature: a convolution with the identity kernel (the frames `unfold` cuts);
- the resize: image -> R_h @ image @ R_w^T, where R_h and R_w are the antialiased bilinear resize
  applied to identity matrices (the resize is separable, so this is the same map); the
  networks' own shrinking resizes do the same while traced (`models.blocks.resize_to`).
`tests/test_deploy.py` checks it equals `AudioFeatures` for every registered feature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import AudioFeatures
from ..data.features import MelSpectrogram, Spectrogram, Waveform
from ..models.blocks import resize_matrix
from ..units import depth_norm_to_m


def stft_kernels(n_fft: int, win_length: int, window: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Returns the (2 * (n_fft/2 + 1), 1, win_length) real and imaginary STFT kernels and the
    offset of the window inside the n_fft frame."""
    offset = (n_fft - win_length) // 2
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(win_length, dtype=torch.float64)[None] + offset
    angle = 2 * math.pi * k * n / n_fft
    w = window.double()[None]
    kernels = torch.cat([w * torch.cos(angle), -w * torch.sin(angle)])
    return kernels[:, None].float(), offset


class LinearFrontend(nn.Module):
    """`AudioFeatures` for recordings of exactly `n_samples` samples (after the cut)."""

    def __init__(self, feature_extractor: AudioFeatures, n_samples: int):
        super().__init__()
        cfg = feature_extractor.cfg
        self.cfg = cfg
        self.n_samples = feature_extractor.n_samples(n_samples)
        self.kind = type(feature_extractor.feature)
        self.cues = feature_extractor.feature if hasattr(feature_extractor.feature, "from_stft") else None
        if self.kind not in (Spectrogram, MelSpectrogram, Waveform) and self.cues is None:
            raise NotImplementedError(f"no exportable form of the audio feature {cfg.audio_format!r}")
        self.log = cfg.log and feature_extractor.feature.compressible
        n_frames = 1 + self.n_samples // cfg.hop_length
        if self.kind is Waveform:
            kernels, self.offset, self.pad_mode = torch.eye(cfg.win_length)[:, None], 0, "constant"
            self.pad = cfg.win_length // 2
            n_rows = cfg.win_length
        else:
            kernels, self.offset = stft_kernels(cfg.n_fft, cfg.win_length, torch.hann_window(cfg.win_length))
            self.pad, self.pad_mode = cfg.n_fft // 2, "reflect"
            n_rows = cfg.n_fft // 2 + 1
            if self.kind is MelSpectrogram:
                self.register_buffer("mel_fb", feature_extractor.feature.mel_fb.clone())
                n_rows = cfg.n_mels
        self.n_frames = n_frames
        self.register_buffer("kernels", kernels)
        self.register_buffer("resize_h", resize_matrix(n_rows, cfg.image_size[0]))
        self.register_buffer("resize_w_t", resize_matrix(n_frames, cfg.image_size[1]).T.contiguous())

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, 2, n) waveforms, n >= n_samples (the rest is cut) -> (B, C, H, W) feature images."""
        wave = wave[:, :, : self.n_samples]
        b = wave.shape[0]
        flat = wave.reshape(b * 2, 1, self.n_samples)
        padded = F.pad(flat, (self.pad, self.pad), mode=self.pad_mode)[:, :, self.offset :]
        frames = F.conv1d(padded, self.kernels, stride=self.cfg.hop_length)[:, :, : self.n_frames]
        if self.kind is Waveform:
            image = frames
        elif self.cues is not None:  # (B*2, 2F, T) -> real and imaginary parts, each (B, 2, F, T)
            half = frames.shape[1] // 2
            parts = frames.reshape(b, 2, 2, half, self.n_frames)
            image = self.cues.from_stft(parts[:, :, 0], parts[:, :, 1])
        else:
            half = frames.shape[1] // 2
            image = torch.sqrt(frames[:, :half] ** 2 + frames[:, half:] ** 2)
            if self.kind is MelSpectrogram:
                image = torch.matmul(self.mel_fb, image)
        image = image.reshape(b, -1, image.shape[-2], self.n_frames)
        if self.log:
            image = torch.log1p(image)
        return torch.matmul(torch.matmul(self.resize_h, image), self.resize_w_t)


class DepthPipeline(nn.Module):
    """Waveforms (B, 2, n) -> base, residual and final depth in metres, each (B, 1, H, W)."""

    def __init__(self, network: nn.Module, feature_extractor: AudioFeatures, n_samples: int, max_depth_m: float):
        super().__init__()
        self.frontend = LinearFrontend(feature_extractor, n_samples)
        self.network = network
        self.max_depth_m = float(max_depth_m)

    def forward(self, wave: torch.Tensor):
        """Returns (base, residual, final) depth in metres, each (B, 1, H, W), of (B, 2, n) waveforms."""
        return tuple(depth_norm_to_m(t, self.max_depth_m) for t in self.network(self.frontend(wave)))
