"""Finding chirps in long recordings, without torch.

A robot chirps again and again; the model was trained on windows that start a fixed time before
the chirp reaches the ears. `find_chirps` runs a matched filter normalised to a correlation
coefficient (the recording correlated with the emitted chirp, divided by both energies, mean of
the ears: 1 for an exact copy of the chirp at any level, about 1/sqrt(chirp length) for noise),
and tests each point against the noise floor: a chirp must stand `NOISE_FLOOR_Z` robust standard
deviations (1.4826 x the median absolute deviation) above the median coefficient. Noise alone
therefore holds no chirp, at any level. Among significant points, a chirp's raw matched filter
must also reach `threshold` x its strongest peak (weaker echoes are no new chirp). It walks
forward in time, takes the first such point, the highest peak within one chirp length after it,
and then skips `min_gap` samples (echoes of that chirp).
`benchmarks/bench_chirps.py` measures false chirps per minute on noise and the detection rate
at 0, 10 and 20 dB SNR. The window of each chirp starts `lead` samples
before its peak, where `lead` is where the peak lies in the training recordings
(`measure_emission`, stored in the checkpoint and in exported models).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import correlate

from ..errors import DataError

NOISE_FLOOR_Z = 8.0  # robust standard deviations above the median: no false chirp in 10 minutes of noise


def matched_filter(wave: np.ndarray, chirp: np.ndarray) -> np.ndarray:
    """Returns, for each start sample i, sum over ears of |correlation of wave[:, i:i+n] with the
    chirp| (length N - n + 1)."""
    wave = np.asarray(wave, dtype=np.float64)
    chirp = np.asarray(chirp, dtype=np.float64)
    if wave.shape[-1] < len(chirp):
        return np.zeros(0)
    return sum(np.abs(correlate(ear, chirp, mode="valid", method="fft")) for ear in wave)


def normalised_correlation(wave: np.ndarray, chirp: np.ndarray) -> np.ndarray:
    """Returns, for each start sample i, the mean over ears of |correlation of wave[:, i:i+n] with
    the chirp| / (||chirp|| x ||wave[:, i:i+n]||), in [0, 1] (length N - n + 1; 0 where the
    recording is digitally silent)."""
    wave = np.asarray(wave, dtype=np.float64)
    chirp = np.asarray(chirp, dtype=np.float64)
    n = len(chirp)
    if wave.shape[-1] < n:
        return np.zeros(0)
    chirp_norm = np.sqrt(np.sum(chirp**2))
    scores = []
    for ear in wave:
        energy = np.concatenate([[0.0], np.cumsum(ear**2)])
        segment_norm = np.sqrt(np.clip(energy[n:] - energy[:-n], 0, None))
        corr = np.abs(correlate(ear, chirp, mode="valid", method="fft"))
        floor = 1e-9 * chirp_norm * (segment_norm.max() if segment_norm.size else 0.0)  # digital silence
        scores.append(np.where(segment_norm > floor, corr / np.maximum(segment_norm * chirp_norm, 1e-300), 0.0))
    return np.clip(np.mean(scores, axis=0), 0.0, 1.0)


def significance_level(score: np.ndarray, chirp_length: int) -> float:
    """Returns the least normalised correlation a chirp needs: NOISE_FLOOR_Z robust standard
    deviations above the median, the spread at least white noise's (0.5 / sqrt(n) for the mean
    of two ears' |coefficient|, n the chirp's length)."""
    median = float(np.median(score))
    spread = max(1.4826 * float(np.median(np.abs(score - median))), 0.5 / np.sqrt(chirp_length))
    return median + NOISE_FLOOR_Z * spread


def find_chirps(wave: np.ndarray, chirp: np.ndarray, min_gap: int, threshold: float = 0.25) -> np.ndarray:
    """Returns the matched filter's peak sample of each chirp in a (2, N) recording, in order:
    points that pass the significance test against the noise floor (`significance_level`) and
    reach `threshold` x the strongest matched-filter peak."""
    if not 0 < threshold < 1:
        raise DataError(f"chirp detection threshold {threshold}: expected a fraction between 0 and 1")
    raw = matched_filter(wave, chirp)
    score = normalised_correlation(wave, chirp)
    if score.size == 0 or not np.isfinite(raw).all() or raw.max() <= 0:
        return np.zeros(0, dtype=np.int64)
    candidate = (score >= significance_level(score, len(chirp))) & (raw >= threshold * raw.max())
    peaks, i, n = [], 0, len(chirp)
    while i < score.size:
        above = np.flatnonzero(candidate[i:])
        if above.size == 0:
            break
        start = i + int(above[0])
        peak = start + int(np.argmax(raw[start : start + n]))
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
