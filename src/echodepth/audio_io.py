"""Reading recordings without torch: stereo audio files (any sample type soundfile reads, V2's
32-bit PCM included), V1's per-ear waveforms and (2, N) arrays. `echodepth predict --model`
(onnxruntime) and the training data both read through here; errors are one-line DataErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import DataError


def read_audio_file(path: Path, what: str = "audio file", dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Returns (samples (N, channels), sample rate) of any file soundfile reads; an unreadable
    file is a one-line DataError starting with `what`."""
    try:
        return sf.read(path, dtype=dtype, always_2d=True)
    except Exception as err:  # libsndfile's errors have no common public base class
        raise DataError(f"{what} {path} is unreadable ({str(err).strip()})") from None


def read_stereo(path: Path, expected_rate: int, where: str) -> np.ndarray:
    """Returns the (2, N) float32 waveform of a stereo audio file; `where` prefixes errors."""
    if not path.is_file():
        raise DataError(f"{where}: audio file {path} not found")
    data, rate = read_audio_file(path, f"{where}: audio file")
    if data.shape[1] != 2:
        raise DataError(f"{where}: audio file {path} has {data.shape[1]} channel(s), expected 2 (left, right)")
    if rate != expected_rate:
        raise DataError(f"{where}: audio file {path} is sampled at {rate} Hz, expected {expected_rate} Hz")
    return np.ascontiguousarray(data.T)


def read_ear_pair(left: Path, right: Path, where: str) -> np.ndarray:
    """Returns the (2, N) float32 waveform from V1's two per-ear .npy files; `where` prefixes errors."""
    ears = []
    for path in (left, right):
        if not path.is_file():
            raise DataError(f"{where}: audio file {path} not found")
        try:
            wave = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{where}: audio file {path} is unreadable ({err})") from None
        wave = np.squeeze(wave)
        if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.number):
            raise DataError(f"{where}: audio file {path} has shape {wave.shape}, expected a 1-D waveform (one ear)")
        ears.append(wave.astype(np.float32))
    if len(ears[0]) != len(ears[1]):
        raise DataError(f"{where}: left and right waveforms differ in length ({len(ears[0])} vs {len(ears[1])})")
    return np.stack(ears)


LEFT, RIGHT = "_left.npy", "_right.npy"


def read_recording(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Returns the (2, N) waveform of a BatVision recording: a stereo audio file (V2), a V1
    `*_left.npy` whose `*_right.npy` lies beside it, or a (2, N) .npy array."""
    if path.name.endswith(LEFT):
        return read_ear_pair(path, path.with_name(path.name[: -len(LEFT)] + RIGHT), str(path))
    if path.suffix == ".npy":
        wave = np.load(path, allow_pickle=False)
        if wave.ndim == 2 and wave.shape[1] == 2 and wave.shape[0] != 2:
            wave = wave.T
        if wave.ndim != 2 or wave.shape[0] != 2:
            raise DataError(f"{path}: expected a (2, N) waveform or a V1 *_left.npy, got shape {wave.shape}")
        return wave.astype(np.float32)
    return read_stereo(path, sample_rate_hz, str(path))


def recording_stem(path: Path) -> str:
    return path.name.removesuffix(LEFT) if path.name.endswith(LEFT) else path.stem


def check_recording(
    shape: tuple, finite: bool, sample_rate_hz: int, expected_rate_hz: int, min_samples: int, max_depth_m: float, name
) -> None:
    """Raises a DataError naming `name` when a (B, 2, N) recording cannot be predicted from: wrong
    sample rate or channels, shorter than the model's window, NaN or infinite samples."""
    if sample_rate_hz != expected_rate_hz:
        raise DataError(f"{name}: sampled at {sample_rate_hz} Hz, the model expects {expected_rate_hz} Hz")
    if len(shape) != 3 or shape[1] != 2:
        raise DataError(f"{name}: shape {tuple(shape)}, expected (2, N) or (B, 2, N): left and right ear")
    if shape[-1] < min_samples:
        seconds = min_samples / expected_rate_hz
        raise DataError(
            f"{name}: {shape[-1]} samples, the model needs at least {min_samples} "
            f"({seconds * 1000:.0f} ms: the echo of {max_depth_m:g} m)"
        )
    if not finite:
        raise DataError(f"{name}: contains NaN or infinite samples")
