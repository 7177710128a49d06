"""Binaural cue features: what the two ears' spectrograms say about direction, stacked with the magnitudes.

Both are computed from the same STFT as the baseline's spectrogram (n_fft 512, win 64, hop 16,
per ear) and returned at its (n_fft/2 + 1) x T grid, so `AudioFeatures` resizes them like it:
- `ild_ipd`: 5 channels, |L|, |R| (log(1 + x) with --log_compression), the interaural level
  difference 20 log10(|L| / |R|) in dB and the interaural phase difference as cos(IPD), sin(IPD)
  (a phase wraps at +-pi; its cosine and sine do not), per time-frequency bin;
- `gcc_phat`: 3 channels, |L|, |R| and the generalised cross-correlation with phase transform of
  each STFT frame, at n_fft/2 + 1 lags evenly spread over +-(the largest path difference the ears
  allow): rows are lags (band-limited interpolation of the correlation between whole samples),
  as SELD systems stack GCC-PHAT with spectrograms. A positive lag: the left ear hears it later.

Each is a fixed function of the STFT's real and imaginary parts (`from_stft`), so the exporters'
convolution STFT (`deploy.frontend`) reuses it unchanged.
"""

from __future__ import annotations

import math

import torch

from .features import BASELINE_SPEED_OF_SOUND_M_S, FEATURES, _Spectrogram

# The ears' spacing: the built-in synthetic data's, ears SynthConfig.ear_offset_m = 0.1 m either side
# of the camera. The BatVision release does not state its microphones' spacing (spec); a human head's
# is about 0.18 m, which 0.2 m covers.
EAR_SPACING_M = 0.2
# |STFT| below this counts as silence for the cues: a bin of digital silence then has ILD 0 dB and a
# phase difference of about 0, instead of the phase of rounding noise (which differs between
# torch.stft and the exported convolution). About 1e-4 of a full-scale bin (Hann 64: 16 per unit amplitude).
MAGNITUDE_FLOOR = 1e-3


def max_lag_samples(sample_rate_hz: int, ear_spacing_m: float = EAR_SPACING_M) -> float:
    """Returns the largest interaural delay in samples: ear spacing / speed of sound * rate (25.9 at 44.1 kHz)."""
    return ear_spacing_m / BASELINE_SPEED_OF_SOUND_M_S * sample_rate_hz


def gcc_matrices(n_fft: int, n_lags: int, max_lag: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the (n_lags, n_fft/2 + 1) cosine and sine matrices of the inverse real DFT at lags
    evenly spread over [-max_lag, max_lag] samples (fractional lags: band-limited interpolation)."""
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[None]
    lags = torch.linspace(-max_lag, max_lag, n_lags, dtype=torch.float64)[:, None]
    weight = torch.full_like(k, 2.0)  # one-sided spectrum of a real signal: the other half mirrored
    weight[0, 0] = weight[0, -1] = 1.0  # DC and Nyquist appear once
    angle = 2 * math.pi * k * lags / n_fft
    return (weight * torch.cos(angle) / n_fft).float(), (weight * torch.sin(angle) / n_fft).float()


class _BinauralCues(_Spectrogram):
    """Shared parts: the magnitudes and the phase-transformed cross spectrum L R* / (|L| |R|)."""

    compressible = False  # log(1 + x) applies to the magnitude channels only, inside from_stft

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the cue images (B, n_channels, n_fft/2 + 1, T) of (B, 2, N) waveforms."""
        spec = self.stft(wave)
        return self.from_stft(spec.real, spec.imag)

    def magnitudes(self, re: torch.Tensor, im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (|STFT|, the image channels of |STFT|) for (B, 2, F, T) real and imaginary parts."""
        mag = torch.sqrt(re**2 + im**2)
        return mag, torch.log1p(mag) if self.cfg.log else mag

    @staticmethod
    def phase_transform(re: torch.Tensor, im: torch.Tensor, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns cos(IPD), sin(IPD), each (B, F, T): L R* over (|L| + floor)(|R| + floor)."""
        cross_re = re[:, 0] * re[:, 1] + im[:, 0] * im[:, 1]
        cross_im = im[:, 0] * re[:, 1] - re[:, 0] * im[:, 1]
        scale = (mag[:, 0] + MAGNITUDE_FLOOR) * (mag[:, 1] + MAGNITUDE_FLOOR)
        return cross_re / scale, cross_im / scale


@FEATURES.register("ild_ipd")
class InterauralLevelPhase(_BinauralCues):
    """|L|, |R|, interaural level difference (dB) and cos, sin of the interaural phase difference:
    (B, 2, N) -> (B, 5, n_fft/2 + 1, T)."""

    n_channels = 5
    compare_variants = {"ild_ipd": {}}

    def from_stft(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """(B, 2, F, T) real and imaginary STFT parts -> (B, 5, F, T)."""
        mag, channels = self.magnitudes(re, im)
        ild_db = 20 * torch.log10((mag[:, 0] + MAGNITUDE_FLOOR) / (mag[:, 1] + MAGNITUDE_FLOOR))
        cos_ipd, sin_ipd = self.phase_transform(re, im, mag)
        return torch.cat([channels, torch.stack([ild_db, cos_ipd, sin_ipd], dim=1)], dim=1)


@FEATURES.register("gcc_phat")
class GccPhat(_BinauralCues):
    """|L|, |R| and each frame's GCC-PHAT over lags within +-EAR_SPACING_M / c:
    (B, 2, N) -> (B, 3, n_fft/2 + 1, T), the third channel's rows being lags."""

    n_channels = 3
    compare_variants = {"gcc_phat": {}}

    def __init__(self, cfg):
        super().__init__(cfg)
        n_rows = cfg.n_fft // 2 + 1
        cos_m, sin_m = gcc_matrices(cfg.n_fft, n_rows, max_lag_samples(cfg.sample_rate_hz))
        self.register_buffer("gcc_cos", cos_m, persistent=False)
        self.register_buffer("gcc_sin", sin_m, persistent=False)

    def from_stft(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """(B, 2, F, T) real and imaginary STFT parts -> (B, 3, F, T)."""
        mag, channels = self.magnitudes(re, im)
        cos_ipd, sin_ipd = self.phase_transform(re, im, mag)
        # Re(sum_k G_k e^{+2 pi i k lag / n_fft}): the inverse DFT of the phase-transformed cross spectrum
        gcc = torch.matmul(self.gcc_cos, cos_ipd) - torch.matmul(self.gcc_sin, sin_ipd)  # (B, lags, T)
        return torch.cat([channels, gcc[:, None]], dim=1)
