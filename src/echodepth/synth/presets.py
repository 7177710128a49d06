"""Named bundles of synthetic-data settings: `echodepth synth OUT --preset NAME` (flags given
beside the preset override it)."""

from __future__ import annotations

from ..errors import ConfigError

SYNTH_PRESETS: dict[str, dict] = {
    "default": {},
    # recordings and depth like BatVision V2's (one real recording measured, see
    # docs/explanation/synthetic-data.md): 0.45 s at 44.1 kHz in 32-bit PCM, the emission 6.5 ms in, a 12 ms chirp
    # through a 1.5-9 kHz device that hears its own speaker at 0.3 of a free one, a diffuse tail of
    # RT60 0.3-0.55 s, noise 5-15 dB under the echoes, and a 16:9 depth camera (180 x 320, a
    # quarter of V2's 720 x 1280 each way, for disk and time) that loses surfaces seen at more
    # than 65 degrees or beyond 7 m: about 22% invalid pixels, as the real depth maps have
    "batvision_v2": {
        "duration_s": 0.45,
        "system_delay_s": 0.0065,
        "chirp_duration_s": 0.012,
        "band_hz": (1500.0, 9000.0),
        "direct_gain": 0.3,
        "reverb_rt60_s": (0.3, 0.55),
        "reverb_level_db": (-48.0, -42.0),
        "snr_db": (5.0, 15.0),
        "audio_subtype": "PCM_32",
        "image_size": (180, 320),
        "invalid_incidence_deg": 65.0,
        "invalid_beyond_m": 7.0,
    },
}


def preset_settings(name: str) -> dict:
    """Returns the settings of a named preset."""
    if name not in SYNTH_PRESETS:
        raise ConfigError(f"synth preset {name!r} is not one of {sorted(SYNTH_PRESETS)}")
    return dict(SYNTH_PRESETS[name])
