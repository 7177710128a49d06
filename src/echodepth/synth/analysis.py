"""Learnability check: does the first echo's arrival time follow the nearest visible depth?"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import correlate, hilbert

from .device import apply_delay, band_response, delay_samples
from .echo import chirp_signal, direct_sound_end, impulse_response
from .scene import SPEED_OF_SOUND_M_S, Pose, Room, SynthConfig
from .writer import METADATA_FILE


def direct_sound(cfg: SynthConfig) -> np.ndarray:
    """Returns the (N, 2) direct sound alone (speaker to ears, no room), before gain and noise."""
    pose = Pose(np.zeros(3))
    ir = impulse_response(Room(np.array([1e3, 1e3, 1e3])), pose, cfg, components=("direct",))
    sweep = chirp_signal(cfg)
    clean = np.stack([np.convolve(ir[e], sweep)[: cfg.n_audio_samples] for e in range(2)])
    return apply_delay(band_response(clean, cfg), cfg).T  # through the device, like the recordings


def first_echo_distance(audio: np.ndarray, cfg: SynthConfig, threshold: float = 0.2) -> float:
    """Returns c * t / 2 in metres for the first echo of a (N, 2) recording.

    The direct sound (the same in every recording up to the gain) is fitted by least squares
    over its own duration and subtracted, as a free-field reference recording would allow;
    the rest is matched-filtered with the chirp, and the echo is the first sample whose
    envelope (both ears summed) exceeds `threshold` times its largest value.
    """
    reference = direct_sound(cfg)
    n = direct_sound_end(cfg)
    scale = float(np.sum(audio[:n] * reference[:n]) / np.sum(reference[:n] ** 2))
    residual = audio - scale * reference
    sweep = chirp_signal(cfg)
    envelope = 0.0
    for ear in range(audio.shape[1]):
        compressed = correlate(residual[:, ear], sweep, mode="full")[len(sweep) - 1 :]
        envelope = envelope + np.abs(hilbert(compressed))
    delay = delay_samples(cfg)
    start = delay + int(round(cfg.ear_offset_m / SPEED_OF_SOUND_M_S * cfg.sample_rate_hz)) + 4
    late = envelope[start:]
    index = start + int(np.argmax(late > threshold * late.max()))
    return (index - delay) / cfg.sample_rate_hz * SPEED_OF_SOUND_M_S / 2


def echo_depth_correlation(data_dir, max_samples: int = 300) -> dict:
    """Returns the Pearson correlation between first-echo distance and nearest visible depth
    over up to max_samples samples of a synthetic dataset, with the mean absolute gap (m)."""
    data_dir = Path(data_dir)
    meta = json.loads((data_dir / METADATA_FILE).read_text())
    cfg = SynthConfig(**meta["settings"])
    rows = []
    for path in sorted(data_dir.glob("*/*.csv")):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    rows = rows[:max_samples]
    echo, nearest = [], []
    for row in rows:
        audio, _ = sf.read(data_dir / row["audio path"] / row["audio file name"], dtype="float32")
        depth_mm = np.load(data_dir / row["depth path"] / row["depth file name"])
        echo.append(first_echo_distance(audio, cfg))
        nearest.append(depth_mm[depth_mm > 0].min() / 1000.0)
    echo, nearest = np.array(echo), np.array(nearest)
    return {
        "n_samples": len(rows),
        "pearson_r": float(np.corrcoef(echo, nearest)[0, 1]),
        "mean_abs_gap_m": float(np.mean(np.abs(echo - nearest))),
    }
