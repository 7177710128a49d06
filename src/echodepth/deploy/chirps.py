"""Finding chirps in long recordings, without torch.

A robot chirps again and again; the model was trained on windows that start a fixed time before
the chirp reaches the ears. `find_chirps` runs a matched filter (the recording correlated with
the emitted chirp, summed over both ears), walks forward in time, takes the first point above
`threshold` x the strongest peak, the highest peak within one chirp length after it, and then
skips `min_gap` samples (echoes of that chirp). The window of each chirp starts `lead` samples
before its peak, where `lead` is where the peak lies in the training recordings
(`measure_emission`, stored in the checkpoint and in exported models).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import correlate

from ..errors import DataError


def matched_filter(wave: np.ndarray, chirp: np.ndarray) -> np.ndarray:
    """Returns, for each start sample i, sum over ears of |correlation of wave[:, i:i+n] with the
    chirp| (length N - n + 1)."""
    wave = np.asarray(wave, dtype=np.float64)
    chirp = np.asarray(chirp, dtype=np.float64)
    if wave.shape[-1] < len(chirp):
        return np.zeros(0)
    return sum(np.abs(correlate(ear, chirp, mode="valid", method="fft")) for ear in wave)


def find_chirps(wave: np.ndarray, chirp: np.ndarray, min_gap: int, threshold: float = 0.25) -> np.ndarray:
    """Returns the matched filter's peak sample of each chirp in a (2, N) recording, in order."""
    if not 0 < threshold < 1:
        raise DataError(f"chirp detection threshold {threshold}: expected a fraction between 0 and 1")
    score = matched_filter(wave, chirp)
    if score.size == 0 or not np.isfinite(score).all() or score.max() <= 0:
        return np.zeros(0, dtype=np.int64)
    level = threshold * score.max()
    peaks, i, n = [], 0, len(chirp)
    while i < score.size:
        above = np.flatnonzero(score[i:] >= level)
        if above.size == 0:
            break
        start = i + int(above[0])
        peak = start + int(np.argmax(score[start : start + n]))
        peaks.append(peak)
        i = peak + max(int(min_gap), 1)
    return np.asarray(peaks, dtype=np.int64)


def measure_emission(chirp: np.ndarray, clips, window_samples: int, sample_rate_hz: int) -> dict:
    """Returns the emission settings stored with a model: the chirp, the lead (median position of
    the matched filter's peak in training recordings `clips`, each (2, N)) and the window length."""
    leads = [int(np.argmax(matched_filter(clip, chirp))) for clip in clips]
    if not leads:
        raise DataError("no recordings to measure the chirp's position in")
    return {
        "chirp": [float(v) for v in np.asarray(chirp, dtype=np.float32)],
        "lead_samples": int(np.median(leads)),
        "window_samples": int(window_samples),
        "sample_rate_hz": int(sample_rate_hz),
    }


def synthetic_emission(dataset, window_samples: int | None, n_clips: int = 16) -> dict | None:
    """Returns the emission settings of a synthetic training set (its chirp from its metadata;
    the window: `window_samples`, or None for whole recordings), or None for data whose emitted
    signal is unknown (BatVision: give `--chirp FILE`)."""
    settings = getattr(dataset, "metadata", {}).get("settings")
    if not settings:
        return None
    from ..synth import SynthConfig
    from ..synth.echo import chirp_signal

    cfg = SynthConfig(**settings)
    clips = [dataset.read_audio(ref) for ref in dataset.refs[:n_clips]]
    window = window_samples or min(clip.shape[1] for clip in clips)
    return measure_emission(chirp_signal(cfg), clips, window, cfg.sample_rate_hz)


def window_starts(peaks: np.ndarray, lead: int, window: int, n_total: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (starts of the windows that fit in the recording, peaks whose window does not)."""
    starts = np.asarray(peaks, dtype=np.int64) - int(lead)
    fits = (starts >= 0) & (starts + window <= n_total)
    return starts[fits], np.asarray(peaks)[~fits]
