"""Named bundles of synthetic-data settings: `echodepth synth OUT --preset NAME` (flags given
beside the preset override it)."""

from __future__ import annotations

from ..errors import ConfigError

SYNTH_PRESETS: dict[str, dict] = {
    "default": {},
    # recordings and depth like BatVision V2's (one real recording measured, see README "The
    # synthetic dataset"): 0.45 s at 44.1 kHz in 32-bit PCM, the emission 6.5 ms in, a band-limited
    # device that hears its own speaker weakly, a long diffuse tail, and a 16:9 depth camera
    # (180 x 320, a quarter of V2's 720 x 1280 each way) that loses oblique and far surfaces
    "batvision_v2": {
        "duration_s": 0.45,
        "system_delay_s": 0.0065,
        "band_hz": (1500.0, 9000.0),
        "direct_gain": 0.1,
        "reverb_rt60_s": (0.25, 0.45),
        "reverb_level_db": (-30.0, -24.0),
        "audio_subtype": "PCM_32",
        "image_size": (180, 320),
        "invalid_incidence_deg": 80.0,
        "invalid_beyond_m": 9.0,
    },
}


def preset_settings(name: str) -> dict:
    """Returns the settings of a named preset."""
    if name not in SYNTH_PRESETS:
        raise ConfigError(f"synth preset {name!r} is not one of {sorted(SYNTH_PRESETS)}")
    return dict(SYNTH_PRESETS[name])
