"""Audio features, batched on any device: magnitude spectrogram, mel spectrogram, raw waveform.

Settings default to the dataset baseline: n_fft 512, win 64, hop 16, power 1 (magnitude), no
dB, per channel, giving 2 x 257 x T, then resized to the image size. The waveform is first cut
to 2 * max_depth / 340 s (the time for an echo from max_depth to return), as the baseline does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

AUDIO_FORMATS = ("spectrogram", "mel", "waveform")
BASELINE_SPEED_OF_SOUND_M_S = 340.0  # the value the baseline's cut uses


@dataclass
class FeatureConfig:
    audio_format: str = "spectrogram"  # spectrogram | mel | waveform
    sample_rate_hz: int = 44100
    n_fft: int = 512
    win_length: int = 64
    hop_length: int = 16
    n_mels: int = 32
    f_min_hz: float = 20.0
    f_max_hz: float = 20000.0
    cut: bool = True  # keep the first 2 * max_depth / 340 s only
    log: bool = False  # log(1 + x) compression of spectrogram magnitudes
    image_size: tuple[int, int] = (128, 128)  # features are resized to this (H, W)

    def __post_init__(self):
        self.image_size = tuple(int(v) for v in self.image_size)
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format {self.audio_format!r} is not one of {AUDIO_FORMATS}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d


def cut_length(max_depth_m: float, sample_rate_hz: int) -> int:
    """Returns the number of samples kept by the cut: 2 * max_depth / 340 * sample rate."""
    return int(2 * max_depth_m / BASELINE_SPEED_OF_SOUND_M_S * sample_rate_hz)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate_hz: int, f_min: float, f_max: float) -> torch.Tensor:
    """Returns the (n_mels, n_freqs) triangular HTK-mel filterbank."""

    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    freqs = torch.linspace(0, sample_rate_hz / 2, n_freqs, dtype=torch.float64)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


class AudioFeatures(nn.Module):
    """Maps waveforms (B, 2, N) to feature images (B, 2, H, W); runs wherever its input lives."""

    def __init__(self, cfg: FeatureConfig, max_depth_m: float):
        super().__init__()
        self.cfg = cfg
        self.max_depth_m = max_depth_m
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        if cfg.audio_format == "mel":
            fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.n_mels, cfg.sample_rate_hz, cfg.f_min_hz, cfg.f_max_hz)
            self.register_buffer("mel_fb", fb, persistent=False)

    def n_samples(self, available: int) -> int:
        """Returns the number of input samples used (the cut, or all)."""
        if not self.cfg.cut:
            return available
        return min(available, cut_length(self.max_depth_m, self.cfg.sample_rate_hz))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, c, n = wave.shape
        wave = wave[..., : self.n_samples(n)].float()
        flat = wave.reshape(b * c, -1)
        if cfg.audio_format == "waveform":
            # raw samples framed like the STFT (win_length samples every hop): (B*2, win, T)
            padded = F.pad(flat, (cfg.win_length // 2, cfg.win_length // 2))
            image = padded.unfold(-1, cfg.win_length, cfg.hop_length).transpose(1, 2)
        else:
            spec = torch.stft(flat, cfg.n_fft, cfg.hop_length, cfg.win_length, self.window, center=True, return_complex=True).abs()
            image = spec if cfg.audio_format == "spectrogram" else torch.einsum("mf,bft->bmt", self.mel_fb, spec)
            if cfg.log:
                image = torch.log1p(image)
        image = image.reshape(b, c, *image.shape[-2:])  # (B, 2, F, T)
        # antialias: a plain bilinear shrink of 487 STFT frames to 128 columns would skip most frames
        return F.interpolate(image, size=cfg.image_size, mode="bilinear", align_corners=False, antialias=True)
