"""Reading a dataset's files: split CSVs, paths kept inside the dataset root, stereo audio files
and V1's per-ear waveforms. Every error is a one-line DataError naming the CSV line and the file."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DataError


@dataclass(frozen=True)
class SampleRef:
    csv_path: Path
    line: int  # line in the CSV file (the header is line 1)
    audio: tuple[Path, ...]  # one stereo file (V2) or left and right waveforms (V1)
    depth: Path
    location: str = ""

    def where(self) -> str:
        return f"{self.csv_path}, line {self.line}"


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """Returns root / relative, refusing a path that leaves the dataset root."""
    if not relative or not relative.strip():
        raise DataError(f"{where}: empty path")
    path = (root / relative.strip()).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(f"{where}: path {relative!r} escapes the dataset root {root}")
    return path


def read_csv(csv_path: Path, needed: tuple[str, ...]) -> list[tuple[int, dict]]:
    """Returns (line number, row) pairs; a missing file or column is a DataError."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: split CSV not found")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {missing}; found {columns}")
        return [(i + 2, row) for i, row in enumerate(reader)]


def read_stereo(path: Path, expected_rate: int, where: str) -> np.ndarray:
    """Returns the (2, N) float32 waveform of a stereo audio file; `where` prefixes errors."""
    if not path.is_file():
        raise DataError(f"{where}: audio file {path} not found")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile's errors have no common public base class
        raise DataError(f"{where}: audio file {path} is unreadable ({str(err).strip()})") from None
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
