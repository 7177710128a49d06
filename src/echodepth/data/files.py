"""Reading a dataset's files: split CSVs, paths kept inside the dataset root, stereo audio files
and V1's per-ear waveforms. Every error is a one-line DataError naming the CSV line and the file."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..audio_io import read_ear_pair, read_stereo
from ..errors import DataError

__all__ = ["SampleRef", "read_csv", "read_ear_pair", "read_stereo", "resolve_inside"]


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
