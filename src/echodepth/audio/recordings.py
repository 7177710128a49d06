"""Reading recordings without torch: stereo audio files (any sample type soundfile reads, V2's
32-bit PCM included), V1's per-ear waveforms and (2, N) arrays. `echodepth predict --model`
(onnxruntime) and the training data both read through here; errors are one-line DataErrors.

Every recording passes the same checks: integer samples are scaled to [-1, 1) as soundfile
scales integer WAVs (int16 / 32768, ...), a file that is not a numeric .npy array (text, pickled,
truncated, a PNG, a folder) is named as such, and a silent recording is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DataError, first_line
from ..settings.arguments import pcm_bits as check_pcm_bits
from ..settings.arguments import sample_rate_hz as check_sample_rate_hz

NPY_MAGIC = b"\x93NUMPY"
# what a file that is not a .npy array usually is, by its first bytes
FILE_KINDS = {b"\x89PNG": "a PNG image", b"PK\x03\x04": "a zip archive (.npz?)", b"RIFF": "a WAV file"}
MAX_SAMPLE = 2.0**31  # no recording's sample is larger, integer PCM stored as floats included
SILENT_RMS_DBFS = -120.0  # 20 dB below the 16-bit quantisation floor (about -101 dBFS RMS): digital silence


def load_npy(path: Path, what: str) -> np.ndarray:
    """Returns the numeric array of a .npy file; a folder, a missing file, or a file that is not
    a numeric .npy array (text, pickled objects, truncated, an image) is a one-line DataError
    starting with `what` and naming the file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder, expected a .npy file")
    if not path.is_file():
        raise DataError(f"{what} {path} not found")
    with open(path, "rb") as f:
        magic = f.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:
        kind = next((k for m, k in FILE_KINDS.items() if magic.startswith(m)), None)
        kind = kind or ("an empty file" if not magic else "not a NumPy .npy file (text?)")
        hint = " (load the image, e.g. with imageio, and numpy.save it, keeping its unit)" if "PNG" in kind else ""
        raise DataError(f"{what} {path} is {kind}, expected an array written by numpy.save{hint}")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError, EOFError, OSError, SyntaxError... for bad files
        message = first_line(err)
        pickled = "pickle" in message or "Object arrays" in message
        reason = "holds Python objects (pickled), not numbers" if pickled else f"is truncated or damaged ({message})"
        raise DataError(f"{what} {path} {reason}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise DataError(f"{what} {path} holds {array.dtype} values, expected numbers")
    return array


PCM_BITS_OF_DTYPE = {"int8": 8, "uint8": 8, "int16": 16, "int32": 32}  # the integer types PCM comes in


def pcm_to_float(samples: np.ndarray, name, pcm_bits: int | None = None) -> np.ndarray:
    """Returns float32 samples in full-scale units (1.0 = full scale), as soundfile reads WAVs.

    Floats are returned as they are. Integers are PCM of `pcm_bits` bits: signed x / 2**(bits - 1),
    unsigned (offset binary, e.g. 8-bit WAV) (x - 2**(bits - 1)) / 2**(bits - 1). Without
    `pcm_bits` the width is the type's for int8, uint8, int16 and int32; other integer types
    (int64, NumPy's default integer, and uint16, uint32, uint64) hold no PCM width of their own
    and are a DataError asking for it, as are samples beyond the declared width and `pcm_bits`
    given for float samples. Booleans, complex numbers, text and objects are a DataError naming
    `name`; a `pcm_bits` that is no PCM width (`arguments.PCM_WIDTHS`) a ConfigError."""
    samples = np.asarray(samples)
    kind = samples.dtype.kind
    if kind not in "iuf":
        raise DataError(f"{name}: samples of type {samples.dtype}, expected integer PCM or floating-point samples")
    if pcm_bits is not None:
        pcm_bits = check_pcm_bits(pcm_bits)
        if kind == "f":
            raise DataError(f"{name}: pcm_bits {pcm_bits} applies to integer samples; these are {samples.dtype}")
    if kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, refused by the checks
            return samples.astype(np.float32)
    bits = pcm_bits or PCM_BITS_OF_DTYPE.get(samples.dtype.name)
    if bits is None:
        raise DataError(
            f"{name}: samples of type {samples.dtype} hold no PCM width of their own: declare it "
            "(pcm_bits=16 for 16-bit PCM; predict --pcm_bits 16), or store them as int16 / int32 or as floats"
        )
    half = float(2 ** (bits - 1))
    offset = half if kind == "u" else 0.0
    if samples.size and 8 * samples.dtype.itemsize > bits:  # a wider type: the values must fit the width
        low, high = int(samples.min()) - offset, int(samples.max()) - offset
        if low < -half or high >= half:
            raise DataError(f"{name}: {samples.dtype} samples from {low:.0f} to {high:.0f} do not fit {bits}-bit PCM")
    return ((samples.astype(np.float64) - offset) / half).astype(np.float32)


def rms_dbfs(wave: np.ndarray) -> float:
    """Returns the RMS level of samples in dB re full scale (-inf for zeros or no samples)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if np.size(wave) else 0.0
    return 20 * np.log10(rms) if rms > 0 else (-np.inf if rms == 0 else np.nan)


def check_not_silent(wave: np.ndarray, name) -> None:
    """Raises a DataError naming `name` when a recording (2, N) is digitally silent (RMS below
    SILENT_RMS_DBFS): nothing to hear echoes in."""
    level = rms_dbfs(wave)
    if level < SILENT_RMS_DBFS:
        shown = "all zeros" if level == -np.inf else f"RMS {level:.0f} dBFS"
        raise DataError(f"{name}: silent recording ({shown}); nothing to predict from")


def read_audio_file(path: Path, what: str = "audio file", dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Returns (samples (N, channels), sample rate) of any file soundfile reads; an unreadable
    file is a one-line DataError starting with `what`."""
    try:
        return sf.read(path, dtype=dtype, always_2d=True)
    except Exception as err:  # libsndfile's errors have no common public base class
        raise DataError(f"{what} {path} is unreadable ({str(err).strip()})") from None


def read_stereo_and_rate(path: Path, where: str) -> tuple[np.ndarray, int]:
    """Returns (the (2, N) float32 waveform, its sample rate in Hz) of a stereo audio file; a
    folder, a missing or unreadable file, or another number of channels than 2 is a DataError
    prefixed by `where`."""
    if path.is_dir():
        raise DataError(f"{where}: audio path {path} is a folder, expected an audio file")
    if not path.is_file():
        raise DataError(f"{where}: audio file {path} not found")
    data, rate = read_audio_file(path, f"{where}: audio file")
    if data.shape[1] != 2:
        raise DataError(f"{where}: audio file {path} has {data.shape[1]} channel(s), expected 2 (left, right)")
    return np.ascontiguousarray(data.T), int(rate)


def read_stereo(path: Path, expected_rate: int, where: str) -> np.ndarray:
    """Returns the (2, N) float32 waveform of a stereo audio file sampled at `expected_rate` Hz
    (another rate is a DataError); `where` prefixes errors."""
    wave, rate = read_stereo_and_rate(path, where)
    if rate != expected_rate:
        raise DataError(f"{where}: audio file {path} is sampled at {rate} Hz, expected {expected_rate} Hz")
    return wave


def read_ear_pair(left: Path, right: Path, where: str, pcm_bits: int | None = None) -> np.ndarray:
    """Returns the (2, N) float32 waveform from V1's two per-ear .npy files (float or integer
    PCM, scaled by `pcm_to_float`; `pcm_bits` declares integer files' width); `where` prefixes errors."""
    ears = []
    for path in (left, right):
        wave = np.squeeze(load_npy(path, f"{where}: audio file"))
        if wave.ndim != 1:
            raise DataError(f"{where}: audio file {path} has shape {wave.shape}, expected a 1-D waveform (one ear)")
        ears.append(pcm_to_float(wave, f"{where}: audio file {path}", integer_bits(wave, pcm_bits)))
    if len(ears[0]) != len(ears[1]):
        raise DataError(f"{where}: left and right waveforms differ in length ({len(ears[0])} vs {len(ears[1])})")
    return np.stack(ears)


LEFT, RIGHT = "_left.npy", "_right.npy"
RECORDING_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".npy")


def integer_bits(samples: np.ndarray, pcm_bits: int | None) -> int | None:
    """Returns `pcm_bits` for integer samples and None for floats: a width declared for a set of
    files applies to the integer ones (audio files and float arrays carry their own scale)."""
    return pcm_bits if samples.dtype.kind in "iu" else None


def read_recording_and_rate(path: Path, npy_rate_hz: int, pcm_bits: int | None = None) -> tuple[np.ndarray, int]:
    """Returns (the (2, N) float32 waveform, its sample rate in Hz) of a BatVision recording: a
    stereo audio file (V2) at its own rate, a V1 `*_left.npy` whose `*_right.npy` lies beside it,
    or a (2, N) or (N, 2) .npy array (integer PCM scaled, `pcm_bits` bits where given: see
    `pcm_to_float`); a .npy file holds no rate, so theirs is `npy_rate_hz`. Anything unreadable
    is a one-line DataError (the level is checked by `check_recording` and the datasets)."""
    path = Path(path)
    if path.name.endswith(LEFT):
        return read_ear_pair(path, path.with_name(path.name[: -len(LEFT)] + RIGHT), str(path), pcm_bits), npy_rate_hz
    if path.suffix == ".npy":
        wave = load_npy(path, "audio file")
        if wave.ndim == 2 and wave.shape[1] == 2 and wave.shape[0] != 2:
            wave = wave.T
        if wave.ndim != 2 or wave.shape[0] != 2:
            raise DataError(f"{path}: expected a (2, N) waveform or a V1 *_left.npy, got shape {wave.shape}")
        return pcm_to_float(wave, path, integer_bits(wave, pcm_bits)), npy_rate_hz
    return read_stereo_and_rate(path, str(path))


def read_recording(path: Path, sample_rate_hz: int, pcm_bits: int | None = None) -> np.ndarray:
    """Returns the (2, N) float32 waveform of a recording (`read_recording_and_rate`'s kinds) that
    is sampled at `sample_rate_hz`; an audio file at another rate is a DataError naming both."""
    wave, rate = read_recording_and_rate(path, sample_rate_hz, pcm_bits)
    if rate != sample_rate_hz:
        raise DataError(f"{path}: audio file {path} is sampled at {rate} Hz, expected {sample_rate_hz} Hz")
    return wave


def recording_stem(path: Path) -> str:
    """Returns a recording's name without its suffix (a V1 `x_left.npy` gives `x`)."""
    return path.name.removesuffix(LEFT) if path.name.endswith(LEFT) else path.stem


def is_recording(path: Path, arrays: bool = True) -> bool:
    """Returns whether a file is a recording `read_recording` reads: an audio file, a V1
    `*_left.npy` (its `*_right.npy` is read with it, so is no recording of its own) or, with
    `arrays`, any other .npy file as a (2, N) array."""
    if not path.is_file() or path.name.endswith(RIGHT):
        return False
    suffix = path.suffix.lower()
    return path.name.endswith(LEFT) or (suffix in RECORDING_SUFFIXES and (arrays or suffix != ".npy"))


def recordings_in(folder: Path, recursive: bool = False) -> list[Path]:
    """Returns the recordings in a folder, sorted (`is_recording`). Without `recursive`, its own
    files, (2, N) .npy arrays included; with it, every sub-folder's too, but not plain .npy
    arrays: in a dataset's tree those are depth maps. A folder with none is a DataError."""
    files = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    found = sorted(p for p in files if is_recording(p, arrays=not recursive))
    if not found:
        kinds = ", ".join(RECORDING_SUFFIXES) if not recursive else "audio files, V1 *_left.npy"
        raise DataError(f"folder {folder} holds no recordings ({kinds})")
    return found


def as_waveform_batch(waveform, name, pcm_bits: int | None = None) -> np.ndarray:
    """Returns a recording (2, N) or a batch (B, 2, N) of any numeric array type as a float32
    (B, 2, N) batch (integer PCM of `pcm_bits` bits scaled by `pcm_to_float`, which says what is
    refused); other types are a DataError."""
    try:
        wave = np.asarray(waveform)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise DataError(f"{name}: not an array of samples ({err})") from None
    wave = pcm_to_float(wave, name, pcm_bits)
    return wave[None] if wave.ndim == 2 else wave


def check_recording(
    wave: np.ndarray, sample_rate_hz: int, *, expected_rate_hz: int, min_samples: int, max_depth_m: float, name,
    samples_used: int | None = None,
) -> None:  # fmt: skip
    """Raises a DataError naming `name` when a float (B, 2, N) batch of recordings cannot be
    predicted from: wrong sample rate or channels, an empty batch, shorter than the model's
    window, NaN or infinite samples, samples beyond MAX_SAMPLE, or a silent window (the first
    `samples_used` samples). A sample rate that is not a number (`arguments.sample_rate_hz`) is a
    ConfigError naming its type."""
    shape = wave.shape
    sample_rate_hz = check_sample_rate_hz(sample_rate_hz)
    if sample_rate_hz != expected_rate_hz:
        raise DataError(f"{name}: sampled at {sample_rate_hz} Hz, the model expects {expected_rate_hz} Hz")
    if len(shape) != 3 or shape[1] != 2:
        raise DataError(f"{name}: shape {tuple(shape)}, expected (2, N) or (B, 2, N): left and right ear")
    if shape[0] == 0:
        raise DataError(f"{name}: an empty batch (0 recordings)")
    if shape[-1] < min_samples:
        seconds = min_samples / expected_rate_hz
        raise DataError(
            f"{name}: {shape[-1]} samples, the model needs at least {min_samples} "
            f"({seconds * 1000:.0f} ms: the echo of {max_depth_m:g} m)"
        )
    if not np.isfinite(wave).all():
        raise DataError(f"{name}: contains NaN or infinite samples")
    peak = float(np.abs(wave).max())
    if peak > MAX_SAMPLE:
        raise DataError(f"{name}: samples up to {peak:.3g}, expected full-scale units (1.0) or at most 2^31")
    for i, recording in enumerate(wave):
        check_not_silent(recording[:, :samples_used], name if len(wave) == 1 else f"{name} [{i}]")
