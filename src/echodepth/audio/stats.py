"""`echodepth audio-stats`: the statistics that tell synthetic echoes from real ones.

For each recording (left channel unless stated; times from the file's start):
- length in samples and ms, and the sample rate;
- onset: the first time the 1 ms RMS envelope rises above -20 dB of its peak (the emission
  reaching the ears, after any system delay), and the time of the envelope's peak;
- the envelope at 10, 20, 40, 80 and 160 ms, in dB relative to its peak (how strong the echoes
  and the reverberation are against the direct sound, and how fast they decay);
- the noise floor: the median envelope over the last 10% of the file, dB re peak;
- the spectral centroid (Welch power spectrum), in kHz;
- the interaural level difference (dB, left over right, whole file) and time difference (ms, the
  lag of the largest cross-correlation within +-1 ms over the 20 ms after the onset; positive
  when the right ear hears later).
A file is read as `predict` reads it (`audio.recordings.read_recording_and_rate`: an audio file at its own
rate, a V1 *_left.npy with its right ear, a (2, N) .npy array); a folder gives the median of each
statistic over the recordings in it and its sub-folders (audio files and V1 *_left.npy; plain .npy
files there are depth maps).
No torch here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import correlate, welch

from ..errors import DataError, MissingFileError
from .recordings import read_recording_and_rate, recordings_in

ENVELOPE_TIMES_MS = (10, 20, 40, 80, 160)
ONSET_DB = -20.0
STATS = (
    ("n_files", "recordings", "{:.0f}"),
    ("sample_rate_hz", "sample rate (Hz)", "{:.0f}"),
    ("length_samples", "length (samples)", "{:,.0f}"),
    ("length_ms", "length (ms)", "{:.1f}"),
    ("onset_ms", "onset, -20 dB re peak (ms)", "{:.1f}"),
    ("peak_ms", "envelope peak (ms)", "{:.1f}"),
    *((f"envelope_{t}ms_db", f"envelope at {t} ms (dB re peak)", "{:.1f}") for t in ENVELOPE_TIMES_MS),
    ("noise_floor_db", "noise floor, last 10% (dB re peak)", "{:.1f}"),
    ("centroid_khz", "spectral centroid (kHz)", "{:.2f}"),
    ("ild_db", "interaural level difference (dB)", "{:+.2f}"),
    ("itd_ms", "interaural time difference (ms)", "{:+.3f}"),
)


def envelope_db(signal: np.ndarray, sample_rate_hz: int, window_ms: float = 1.0) -> np.ndarray:
    """Returns the RMS envelope over a sliding window (centred), in dB re its peak."""
    width = max(int(round(window_ms * sample_rate_hz / 1000)), 1)
    power = uniform_filter1d(np.asarray(signal, dtype=np.float64) ** 2, width, mode="constant")
    power = np.maximum(power, 1e-30)
    return 10 * np.log10(power / power.max())


def recording_stats(wave: np.ndarray, sample_rate_hz: int) -> dict:
    """Returns the statistics of one (2, N) recording (see the module docstring)."""
    wave = np.asarray(wave, dtype=np.float64)
    rate = float(sample_rate_hz)
    n = wave.shape[1]
    left, right = wave
    env = envelope_db(left, sample_rate_hz)
    onset = int(np.argmax(env > ONSET_DB))
    stats = {
        "n_files": 1,
        "sample_rate_hz": rate,
        "length_samples": float(n),
        "length_ms": n / rate * 1000,
        "onset_ms": onset / rate * 1000,
        "peak_ms": int(np.argmax(env)) / rate * 1000,
    }
    for t in ENVELOPE_TIMES_MS:
        i = int(round(t / 1000 * rate))
        stats[f"envelope_{t}ms_db"] = float(env[i]) if i < n else float("nan")
    stats["noise_floor_db"] = float(np.median(env[int(0.9 * n) :]))
    freqs, psd = welch(left, fs=rate, nperseg=min(1024, n))
    stats["centroid_khz"] = float(np.sum(freqs * psd) / max(np.sum(psd), 1e-30)) / 1000
    energy = np.sum(left**2), np.sum(right**2)
    stats["ild_db"] = float(10 * np.log10(max(energy[0], 1e-30) / max(energy[1], 1e-30)))
    span = slice(onset, min(n, onset + int(0.02 * rate)))
    max_lag = int(0.001 * rate)
    xc = correlate(right[span], left[span], mode="full", method="fft")
    lags = np.arange(-(span.stop - span.start) + 1, span.stop - span.start)
    keep = np.abs(lags) <= max_lag
    stats["itd_ms"] = float(lags[keep][np.argmax(xc[keep])]) / rate * 1000 if keep.any() else float("nan")
    return stats


MIN_SAMPLES = 2  # the statistics need two samples at least (a spectrum, a correlation)


def read_for_stats(path: Path, npy_rate_hz: int) -> tuple[np.ndarray, int]:
    """Returns (the (2, N) waveform, its rate in Hz) of a recording, read by the one reader
    (`audio.recordings.read_recording_and_rate`: an audio file's own rate, `npy_rate_hz` for .npy files);
    fewer than MIN_SAMPLES samples is a DataError."""
    wave, rate = read_recording_and_rate(path, npy_rate_hz)
    if wave.shape[1] < MIN_SAMPLES:
        raise DataError(f"{path}: {wave.shape[1]} sample(s), the statistics need at least {MIN_SAMPLES}")
    return wave, rate


def recordings_under(path: Path) -> list[Path]:
    """Returns the recordings a path names: itself, or those in a folder and its sub-folders
    (`audio.recordings.recordings_in` with recursive: audio files and V1 left ears). A missing path is a
    MissingFileError, a folder without recordings a DataError."""
    if not path.exists():
        raise MissingFileError(f"{path} not found")
    if path.is_file():
        return [path]
    return recordings_in(path, recursive=True)


def path_stats(path, sample_rate_hz: int = 44100, limit: int | None = None) -> dict:
    """Returns the statistics of a file, or their medians over a folder's recordings (at most
    `limit`, spread evenly over the sorted list)."""
    files = recordings_under(Path(path))
    if limit and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    rows = [recording_stats(*read_for_stats(f, sample_rate_hz)) for f in files]
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if np.isfinite(r[key])]
        out[key] = float(np.median(values)) if values else float("nan")
    out["n_files"] = len(rows)
    return out


def format_table(columns: dict[str, dict]) -> str:
    """Returns a Markdown table: one row per statistic, one column per input."""
    names = list(columns)
    lines = ["| statistic | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label, fmt in STATS:
        cells = [fmt.format(columns[n][key]) if np.isfinite(columns[n][key]) else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
