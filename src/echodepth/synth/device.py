"""The recording device and the room's late reverberation, for recordings like BatVision V2's.

Today's generator renders an ideal device: the chirp leaves at the file's first sample, the
speaker and microphones are flat from 20 Hz to 20 kHz, the direct sound is the loudest thing
heard, and the room's tail ends with the image-source orders rendered. A real recording
(BatVision V2: 0.45 s, emission ~6.5 ms after the file starts, spectral centroid ~6 kHz, echoes
only ~6 dB under the peak at 10 ms and the reverberation decaying to a -35 dB noise floor by
~300 ms) differs in four ways, each a `SynthConfig` setting off by default:
- `system_delay_s`: the emission starts this long after the file's start;
- `band_hz`: the speaker and microphone responses, a 2nd-order Butterworth band-pass;
- `direct_gain`: the direct path's amplitude relative to a free speaker (a device whose speaker
  faces away from its microphones hears itself weakly);
- `reverb_rt60_s` / `reverb_level_db`: a diffuse late tail, Gaussian noise under an exponential
  decay with the drawn RT60, starting at the first wall reflection, at a level (dB re the direct
  sound of a free speaker at 1 m, per sample) drawn from the range.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from .scene import SPEED_OF_SOUND_M_S, Pose, Room, SynthConfig


def diffuse_tail(room: Room, pose: Pose, cfg: SynthConfig, rng: np.random.Generator, *, n: int) -> np.ndarray:
    """Returns the (2, n) diffuse late reverberation impulse response (zeros, and no random draw,
    when the RT60 range is 0: the default generator's recordings stay as they were)."""
    if cfg.reverb_rt60_s[1] <= 0:
        return np.zeros((2, n))
    rt60 = rng.uniform(*cfg.reverb_rt60_s)
    level_db = rng.uniform(*cfg.reverb_level_db)
    position = np.asarray(pose.position, float)
    nearest_wall = min(float(np.min(position)), float(np.min(room.size - position)))
    start = 2 * nearest_wall / SPEED_OF_SOUND_M_S
    t = np.arange(n) / cfg.sample_rate_hz
    ramp = np.clip((t - start) / 0.002, 0.0, 1.0)  # a 2 ms build-up after the first reflection
    envelope = 10 ** (level_db / 20) * ramp * np.exp(-6.908 * np.maximum(t - start, 0.0) / rt60)
    return rng.standard_normal((2, n)) * envelope


def band_response(audio: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Returns (2, N) audio through the speaker and microphone band-pass (unchanged without one)."""
    low, high = cfg.band_hz
    if low <= 0 and high <= 0:
        return audio
    nyquist = cfg.sample_rate_hz / 2
    high = min(high, 0.99 * nyquist) if high > 0 else 0.99 * nyquist
    sos = butter(2, [max(low, 1.0), high], btype="bandpass", fs=cfg.sample_rate_hz, output="sos")
    return sosfilt(sos, audio, axis=-1)


def delay_samples(cfg: SynthConfig) -> int:
    """Returns the device's system delay (`system_delay_s`) in samples at its sample rate."""
    return int(round(cfg.system_delay_s * cfg.sample_rate_hz))


def apply_delay(audio: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Returns (2, N) audio starting `system_delay_s` later (zeros before), same length."""
    shift = delay_samples(cfg)
    if shift <= 0:
        return audio
    out = np.zeros_like(audio)
    out[:, shift:] = audio[:, : audio.shape[1] - shift]
    return out
