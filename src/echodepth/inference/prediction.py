"""What a prediction returns, from PyTorch (`Predictor`) or from an exported model alike: depth
maps in metres and a report on each input recording. No torch here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLIP_LEVEL = 0.999  # |sample| at or above this (of full scale 1.0) counts as clipped
SILENT_DBFS = -60.0  # quieter than this: a warning (digital silence is refused by audio.recordings)
OVER_FULL_SCALE = 1.01  # a float peak above this is not a level a sound card records
# a recording this many times the model's window, and over LONG_RECORDING_S, is more than one
# emission's echoes (BatVision V2's recordings are 0.45 s, 2.5 to 6 windows of its models): said
LONG_RECORDING_FACTOR = 8
LONG_RECORDING_S = 1.0


@dataclass
class Prediction:
    """Base, residual and final depth in metres, each (B, 1, H, W), final = base + residual
    (torch tensors from `Predictor`, numpy arrays from an exported model), and per recording a
    validity report (`recording_report`)."""

    base_m: object
    residual_m: object
    final_m: object
    report: list[dict] = field(default_factory=list)


def recording_report(waves: np.ndarray, samples_used: int, sample_rate_hz: int) -> list[dict]:
    """Returns, for each (2, N) recording of a batch (B, 2, N), its length, the samples the model
    read (its window: the first `samples_used`), peak and RMS level, the share of clipped samples,
    and warnings (clipping, a level above full scale, near silence, and a recording much longer
    than the window: how much of it was read, and `predict --chirps` for one of many chirps)."""
    reports = []
    for wave in np.asarray(waves, dtype=np.float32):
        used = wave[:, :samples_used]
        peak = float(np.abs(used).max()) if used.size else 0.0
        rms = float(np.sqrt(np.mean(np.square(used, dtype=np.float64)))) if used.size else 0.0
        clipped = float(np.mean(np.abs(used) >= CLIP_LEVEL)) if used.size else 0.0
        rms_dbfs = 20 * np.log10(rms) if rms > 0 else -np.inf
        warnings = []
        if peak > OVER_FULL_SCALE:
            warnings.append(
                f"odd level: peak {peak:.4g} x full scale (1.0); are integer samples stored as floats? "
                "scale them to [-1, 1]"
            )
        elif clipped > 0:
            warnings.append(f"clipped: {clipped:.1%} of samples at full scale")
        if rms_dbfs < SILENT_DBFS:
            warnings.append(f"nearly silent: RMS {rms_dbfs:.0f} dBFS")
        n = wave.shape[-1]
        if n > LONG_RECORDING_FACTOR * samples_used and n > LONG_RECORDING_S * sample_rate_hz:
            warnings.append(
                f"read only the first {1000 * samples_used / sample_rate_hz:.0f} ms of {n / sample_rate_hz:.1f} s "
                "(the model's window); for a recording of many chirps, `echodepth predict --chirps` predicts one "
                "depth map per chirp"
            )
        reports.append(
            {
                "samples": int(wave.shape[-1]),
                "samples_used": int(min(samples_used, wave.shape[-1])),
                "peak": peak,
                "rms_dbfs": float(rms_dbfs),
                "clipped_fraction": clipped,
                "warnings": warnings,
            }
        )
    return reports
