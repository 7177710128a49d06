"""The synthetic generator's settings checked as a whole, before anything is written: each range
has two numbers, min <= max, and values the renderer can use (sizes, rates, fractions)."""

from __future__ import annotations

import dataclasses
import typing

from ..errors import ConfigError
from ..settings.bounds import bounds_of

COMPONENTS = ("direct", "scatter", "specular", "tail")  # the echo's parts (synth/echo.py renders them)
# settings that must be > 0, and settings that must be >= 0
POSITIVE = ("n_rooms", "samples_per_room", "n_locations", "hfov_deg", "max_depth_m")
POSITIVE += ("chirp_duration_s", "scatter_rays", "chirp_f0_hz", "chirp_f1_hz")
NOT_NEGATIVE = ("wall_clearance_m", "furniture_clearance_m", "ear_offset_m", "margin_s", "tail_max_order")
NOT_NEGATIVE += ("duration_s", "system_delay_s", "direct_gain", "invalid_beyond_m", "speaker_directivity")
# ranges whose values must lie in [low, high]
BOUNDED = {
    "room_size_m": (0.5, 1000.0),
    "room_height_m": (0.5, 100.0),
    "furniture_count": (0, 1000),
    "furniture_scale": (0.01, 100.0),
    "diffuse_reflectivity": (0.0, 1.0),
    "specular_reflectivity": (0.0, 1.0),
    "device_height_m": (0.0, 100.0),
    "pitch_deg": (-90.0, 90.0),
    "gain": (1e-6, 1.0),
    "split_fractions": (0.0, 1.0),
    "image_size": (2, 4096),
    "reverb_rt60_s": (0.0, 100.0),
}


def fixed_length(hint) -> int | None:
    """Returns n for a `tuple[X, ..., X]` hint of n items, None for `tuple[X, ...]` or no tuple."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not tuple or Ellipsis in args:
        return None
    return len(args)


def check_lengths(cfg) -> None:
    """Raises a ConfigError naming a setting of a SynthConfig with the wrong count of values
    (`--room_size_m 3` for a range, `--image_size 32` for H W)."""
    for name, hint in typing.get_type_hints(type(cfg)).items():
        n = fixed_length(hint)
        value = getattr(cfg, name)
        if n is not None and (not isinstance(value, (list, tuple)) or len(value) != n):
            raise ConfigError(f"synth setting {name} takes {n} values, got {value!r}")


def check_synth_settings(cfg) -> None:
    """Raises a ConfigError naming the first setting of a SynthConfig that the generator cannot use:
    a number that is not finite or outside the bounds declared with it first, then the checks here."""
    for f in dataclasses.fields(cfg):
        bounds_of(f).check(f"synth setting {f.name}", getattr(cfg, f.name))
    for name in POSITIVE:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"synth setting {name} must be > 0, got {getattr(cfg, name)}")
    for name in NOT_NEGATIVE:
        if not getattr(cfg, name) >= 0:
            raise ConfigError(f"synth setting {name} must be >= 0, got {getattr(cfg, name)}")
    for name, (low, high) in BOUNDED.items():
        if not all(low <= v <= high for v in getattr(cfg, name)):
            raise ConfigError(f"synth setting {name} {list(getattr(cfg, name))}: each value must be in [{low}, {high}]")
    if not 0 < cfg.hfov_deg < 180 or not 0 < cfg.invalid_incidence_deg <= 90:
        raise ConfigError(
            f"synth settings hfov_deg {cfg.hfov_deg} and invalid_incidence_deg {cfg.invalid_incidence_deg}: "
            "expected 0 < hfov_deg < 180 and 0 < invalid_incidence_deg <= 90"
        )
    if not cfg.chirp_f0_hz < cfg.chirp_f1_hz <= cfg.sample_rate_hz / 2:
        raise ConfigError(
            f"synth chirp {cfg.chirp_f0_hz:g}-{cfg.chirp_f1_hz:g} Hz: expected f0 < f1 <= half the sample rate "
            f"({cfg.sample_rate_hz / 2:g} Hz)"
        )
    if min(cfg.room_size_m) <= 2 * cfg.wall_clearance_m:
        raise ConfigError(
            f"synth setting room_size_m {list(cfg.room_size_m)}: the smallest room must be wider than twice "
            f"wall_clearance_m ({cfg.wall_clearance_m} m), or no device pose fits"
        )
    if max(cfg.device_height_m) >= min(cfg.room_height_m):
        raise ConfigError(
            f"synth settings device_height_m {list(cfg.device_height_m)} and room_height_m "
            f"{list(cfg.room_height_m)}: the device must be below the lowest ceiling"
        )
    unknown = sorted(set(cfg.components) - set(COMPONENTS))
    if unknown or not cfg.components:
        raise ConfigError(f"synth setting components {list(cfg.components)}: expected some of {list(COMPONENTS)}")
    import soundfile as sf

    if cfg.audio_subtype not in sf.available_subtypes("WAV"):
        raise ConfigError(f"synth setting audio_subtype {cfg.audio_subtype!r}: expected one of the WAV sample types")
