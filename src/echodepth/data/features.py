"""Audio features, batched on any device: magnitude spectrogram, mel spectrogram, raw waveform.

Each feature is an `AudioFeature` registered with `@FEATURES.register("name")`: it maps the cut
waveforms (B, 2, N) to a feature image (B, C, F, T) and says how many channels C it gives.
`AudioFeatures` wraps the one chosen by `FeatureConfig.audio_format`: the cut, the feature, an
optional log(1 + x), and the resize to the image size.

Settings default to the dataset baseline: n_fft 512, win 64, hop 16, power 1 (magnitude), no
dB, per channel, giving 2 x 257 x T, then resized to the image size. The waveform is first cut
to a window of 2 * max_depth / 340 s (the time for an echo from max_depth to return): from the
file's start as the baseline does, or `window_start_ms` later, or from the emission's onset found
in each recording (`align_to_emission`: BatVision V1 files begin with about 980 near-silent
samples, which the baseline's window spends on silence); `cut=False` keeps the whole waveform.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

FEATURES = Registry("audio feature")
BASELINE_SPEED_OF_SOUND_M_S = 340.0  # the value the baseline's cut uses
ONSET_FRACTION = 0.1  # the emission's onset: the first sample within 20 dB of the recording's peak


@dataclass
class FeatureConfig:
    """The feature settings a network is trained with (stored in its checkpoint). Sample rate and
    frequencies in Hz, STFT sizes in samples, the window's start in milliseconds. Raises a
    ConfigError for an unknown `audio_format` or STFT sizes outside 1 <= win_length <= n_fft,
    hop_length >= 1."""

    audio_format: str = "spectrogram"  # a name registered in FEATURES
    sample_rate_hz: int = 44100
    n_fft: int = 512
    win_length: int = 64
    hop_length: int = 16
    n_mels: int = 32
    f_min_hz: float = 20.0
    f_max_hz: float = 20000.0
    cut: bool = True  # keep a window of 2 * max_depth / 340 s only (False: the whole waveform)
    window_start_ms: float = 0.0  # the window's start after the file's start (or the emission's onset)
    align_to_emission: bool = False  # the window starts at the emission's onset found in each recording
    log: bool = False  # log(1 + x) compression of spectrogram magnitudes
    image_size: tuple[int, int] = (128, 128)  # features are resized to this (H, W)
    # the chosen feature's own settings (the fields of its `Settings`) that no field above holds
    settings: dict = field(default_factory=dict)

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
        """Returns the settings as plain YAML/JSON values (`image_size` as a list)."""
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        if not d["settings"]:  # a feature without settings of its own: the cache identity stays as it was
            del d["settings"]
        return d

    @property
    def n_channels(self) -> int:
        """Returns the number of feature channels (network input channels)."""
        return FEATURES.get(self.audio_format).n_channels


def cut_length(max_depth_m: float, sample_rate_hz: int) -> int:
    """Returns the number of samples kept by the cut: 2 * max_depth / 340 * sample rate."""
    return int(2 * max_depth_m / BASELINE_SPEED_OF_SOUND_M_S * sample_rate_hz)


def window_length(cfg: FeatureConfig, max_depth_m: float) -> int:
    """Returns the window's length in samples: the cut's, and at least n_fft / 2 + 1 (what the
    STFT's reflect padding needs; only a max depth under 1 m at 44.1 kHz asks for more)."""
    return max(cut_length(max_depth_m, cfg.sample_rate_hz), cfg.n_fft // 2 + 1)


def window_offset(cfg: FeatureConfig) -> int:
    """Returns the window's start in samples after the file's start (or the emission's onset)."""
    return round(cfg.window_start_ms * cfg.sample_rate_hz / 1000)


def min_window_samples(cfg: FeatureConfig, max_depth_m: float) -> int:
    """Returns the shortest recording a window fits in: the fixed window's end, the window's
    length when it follows the emission, n_fft / 2 + 1 for the whole waveform."""
    if not cfg.cut:
        return cfg.n_fft // 2 + 1  # the STFT's reflect padding
    length = window_length(cfg, max_depth_m)
    return length if cfg.align_to_emission else window_offset(cfg) + length


def emission_onsets(wave: torch.Tensor) -> torch.Tensor:
    """Returns, per recording of a (B, 2, N) batch, the first sample whose |amplitude| (either
    ear) reaches ONSET_FRACTION of the recording's peak: where the direct sound arrives. (B,) long."""
    envelope = wave.abs().amax(dim=1)  # (B, N)
    above = envelope >= ONSET_FRACTION * envelope.amax(dim=-1, keepdim=True).clamp(min=1e-30)
    return above.int().argmax(dim=-1)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate_hz: int, *, f_min: float, f_max: float) -> torch.Tensor:
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
    compressible = True  # whether AudioFeatures applies FeatureConfig.log to its whole output
    Settings: type | None = None  # its training settings (a dataclass), see echodepth.settings.components
    compare_variants: dict[str, dict] = {}  # `echodepth compare` variants on this input (name -> settings)

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        self.settings = own_settings(type(self), cfg)


# the feature settings that FeatureConfig holds in a field of its own: setting name -> field
HELD_BY_FEATURE_CONFIG = {"log_compression": "log"}


def own_settings(feature: type[AudioFeature], cfg: FeatureConfig):
    """Returns the `Settings` of a feature class with the values of `cfg` (its `settings`, and the
    fields of `HELD_BY_FEATURE_CONFIG`); None for a feature without settings. Raises ConfigError
    through the Settings' own checks."""
    if feature.Settings is None:
        return None
    names = {f.name for f in fields(feature.Settings)}
    held = {name: getattr(cfg, attr) for name, attr in HELD_BY_FEATURE_CONFIG.items() if name in names}
    return feature.Settings(**held, **{k: v for k, v in cfg.settings.items() if k in names and k not in held})


@dataclass
class MagnitudeSettings:
    """The training setting of the features made of STFT magnitudes (FeatureConfig.log)."""

    log_compression: bool = False  # log(1 + x) of the magnitudes: the direct sound dwarfs the echoes


class _Spectrogram(AudioFeature):
    """Shared STFT of the spectrogram features: per ear, magnitude (power 1), centred frames."""

    Settings = MagnitudeSettings

    def __init__(self, cfg: FeatureConfig):
        super().__init__(cfg)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the complex STFT of each ear, (B, 2, n_fft/2 + 1, T)."""
        b, c, _ = wave.shape
        cfg = self.cfg
        flat = wave.reshape(b * c, -1)
        spec = torch.stft(
            flat, cfg.n_fft, cfg.hop_length, cfg.win_length, self.window, center=True, return_complex=True
        )
        return spec.reshape(b, c, *spec.shape[-2:])

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns |STFT| of each ear of (B, 2, N) waveforms, (B, 2, n_fft/2 + 1, T)."""
        return self.stft(wave).abs()  # (B, 2, n_fft/2 + 1, T)


@FEATURES.register("spectrogram")
class Spectrogram(_Spectrogram):
    """The baseline's magnitude spectrogram: 2 x 257 x T with its settings."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the magnitude spectrogram (B, 2, n_fft/2 + 1, T) of (B, 2, N) waveforms."""
        return self.magnitude(wave)


@FEATURES.register("mel")
class MelSpectrogram(_Spectrogram):
    """n_mels triangular HTK-mel bands (f_min_hz to f_max_hz) of the magnitude spectrogram."""

    def __init__(self, cfg: FeatureConfig):
        super().__init__(cfg)
        fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.n_mels, cfg.sample_rate_hz, f_min=cfg.f_min_hz, f_max=cfg.f_max_hz)
        self.register_buffer("mel_fb", fb, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the mel spectrogram (B, 2, n_mels, T) of (B, 2, N) waveforms."""
        return torch.einsum("mf,bcft->bcmt", self.mel_fb, self.magnitude(wave))


@FEATURES.register("waveform")
class Waveform(AudioFeature):
    """Raw samples framed like the STFT: win_length samples every hop_length, (B, 2, win, T)."""

    compressible = False

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the frames (B, 2, win_length, T) of (B, 2, N) waveforms, T = (N + 2 * (win_length // 2)
        - win_length) // hop_length + 1 (zero-padded by win_length // 2 at both ends, like the STFT's
        centred frames; N // hop_length + 1 for an even win_length)."""
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
        """Returns the number of feature channels C (the network's input channels)."""
        return self.feature.n_channels

    def n_samples(self, available: int) -> int:
        """Returns how many samples from the file's start the window may read: the fixed window's
        end (at most `available`), or all of them (whole waveform, or a window that follows the
        emission)."""
        if not self.cfg.cut or self.cfg.align_to_emission:
            return available
        return min(available, window_offset(self.cfg) + window_length(self.cfg, self.max_depth_m))

    def window(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the samples the features see of (B, 2, N) waveforms: (B, 2, L), L the cut's
        length (zero-padded at the end where a recording is shorter), or the whole waveform."""
        if not self.cfg.cut:
            return wave
        length = window_length(self.cfg, self.max_depth_m)
        offset = window_offset(self.cfg)
        if not self.cfg.align_to_emission:
            return wave[..., offset : offset + length]
        n = wave.shape[-1]
        padded = F.pad(wave, (0, max(0, length - n)))
        starts = (emission_onsets(wave) + offset).clamp(min=0, max=max(0, n - length))  # (B,)
        index = starts[:, None] + torch.arange(length, device=wave.device)  # (B, L)
        return padded.gather(-1, index[:, None, :].expand(-1, wave.shape[1], -1))

    def image(self, window: torch.Tensor) -> torch.Tensor:
        """Returns the (B, C, H, W) feature images of windows already cut by `window`."""
        image = self.feature(window.float())  # (B, C, F, T)
        if self.cfg.log and self.feature.compressible:
            image = torch.log1p(image)
        # antialias: a plain bilinear shrink of 487 STFT frames to 128 columns would skip most frames
        return F.interpolate(image, size=self.cfg.image_size, mode="bilinear", align_corners=False, antialias=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Returns the (B, C, H, W) feature images of (B, 2, N) waveforms: `window`, then `image`."""
        return self.image(self.window(wave))
