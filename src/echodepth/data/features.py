"""Audio features, batched on any device: magnitude spectrogram, mel spectrogram, raw waveform.

Each feature is an `AudioFeature` registered with `@FEATURES.register("name")`: it maps the cut
waveforms (B, 2, N) to a feature image (B, C, F, T) and says how many channels C it gives.
`AudioFeatures` wraps the one chosen by `FeatureConfig.audio_format`: the cut, the feature, an
optional log(1 + x), and the resize to the image size.

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

from ..errors import ConfigError
from ..registry import Registry

FEATURES = Registry("audio feature")
BASELINE_SPEED_OF_SOUND_M_S = 340.0  # the value the baseline's cut uses


@dataclass
class FeatureConfig:
    audio_format: str = "spectrogram"  # a name registered in FEATURES
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
        FEATURES.get(self.audio_format)  # an unknown name is an error listing the known ones
        if not 1 <= self.win_length <= self.n_fft or self.hop_length < 1:
            raise ConfigError(
                f"STFT settings n_fft {self.n_fft}, win_length {self.win_length}, hop_length {self.hop_length}: "
                "expected 1 <= win_length <= n_fft and hop_length >= 1"
            )

    def check_cut(self, max_depth_m: float) -> None:
        """Raises a ConfigError unless the cut for max_depth_m is long enough for the STFT window
        (torch.stft's centred frames pad by n_fft / 2 on each side, a reflection of the signal)."""
        if not self.cut:
            return
        n = cut_length(max_depth_m, self.sample_rate_hz)
        needed = self.n_fft // 2 + 1 if self.audio_format != "waveform" else self.win_length // 2 + 1
        if n < needed:
            least = needed * BASELINE_SPEED_OF_SOUND_M_S / (2 * self.sample_rate_hz)
            raise ConfigError(
                f"max_depth_m {max_depth_m:g} keeps {n} samples of each recording (the echo's return time at "
                f"{self.sample_rate_hz} Hz); the {self.audio_format} features' window needs {needed}: "
                f"give max_depth_m of at least {least:.2f}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    @property
    def n_channels(self) -> int:
        """Returns the number of feature channels (network input channels)."""
        return FEATURES.get(self.audio_format).n_channels


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


class AudioFeature(nn.Module):
    """Base class of registered features: (B, 2, N) waveforms -> (B, n_channels, F, T) images."""

    n_channels = 2  # one image per ear
    compressible = True  # whether FeatureConfig.log applies

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg


class _Spectrogram(AudioFeature):
    """Shared STFT of the spectrogram features: per ear, magnitude (power 1), centred frames."""

    def __init__(self, cfg: FeatureConfig):
        super().__init__(cfg)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        b, c, _ = wave.shape
        cfg = self.cfg
        flat = wave.reshape(b * c, -1)
        spec = torch.stft(
            flat, cfg.n_fft, cfg.hop_length, cfg.win_length, self.window, center=True, return_complex=True
        )
        return spec.abs().reshape(b, c, *spec.shape[-2:])  # (B, 2, n_fft/2 + 1, T)


@FEATURES.register("spectrogram")
class Spectrogram(_Spectrogram):
    """The baseline's magnitude spectrogram: 2 x 257 x T with its settings."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.magnitude(wave)


@FEATURES.register("mel")
class MelSpectrogram(_Spectrogram):
    """n_mels triangular HTK-mel bands (f_min_hz to f_max_hz) of the magnitude spectrogram."""

    def __init__(self, cfg: FeatureConfig):
        super().__init__(cfg)
        fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.n_mels, cfg.sample_rate_hz, cfg.f_min_hz, cfg.f_max_hz)
        self.register_buffer("mel_fb", fb, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.einsum("mf,bcft->bcmt", self.mel_fb, self.magnitude(wave))


@FEATURES.register("waveform")
class Waveform(AudioFeature):
    """Raw samples framed like the STFT: win_length samples every hop_length, (B, 2, win, T)."""

    compressible = False

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        padded = F.pad(wave, (cfg.win_length // 2, cfg.win_length // 2))
        return padded.unfold(-1, cfg.win_length, cfg.hop_length).transpose(-1, -2)


class AudioFeatures(nn.Module):
    """Maps waveforms (B, 2, N) to feature images (B, C, H, W); runs wherever its input lives."""

    def __init__(self, cfg: FeatureConfig, max_depth_m: float):
        super().__init__()
        cfg.check_cut(max_depth_m)
        self.cfg = cfg
        self.max_depth_m = max_depth_m
        self.feature = FEATURES.get(cfg.audio_format)(cfg)

    @property
    def n_channels(self) -> int:
        return self.feature.n_channels

    def n_samples(self, available: int) -> int:
        """Returns the number of input samples used (the cut, or all)."""
        if not self.cfg.cut:
            return available
        return min(available, cut_length(self.max_depth_m, self.cfg.sample_rate_hz))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave[..., : self.n_samples(wave.shape[-1])].float()
        image = self.feature(wave)  # (B, C, F, T)
        if self.cfg.log and self.feature.compressible:
            image = torch.log1p(image)
        # antialias: a plain bilinear shrink of 487 STFT frames to 128 columns would skip most frames
        return F.interpolate(image, size=self.cfg.image_size, mode="bilinear", align_corners=False, antialias=True)
