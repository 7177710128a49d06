"""Reading a dataset's files: split CSVs, paths kept inside the dataset root, stereo audio files
and V1's per-ear waveforms. Every error is a one-line DataError naming the CSV line and the file."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..audio.recordings import read_ear_pair, read_stereo
from ..errors import DataError

__all__ = ["SampleRef", "read_csv", "read_ear_pair", "read_stereo", "refs_from_csv", "resolve_inside"]


@dataclass(frozen=True)
class SampleRef:
    """One sample of a split: its CSV line and the audio and depth files it names (inside the root)."""

    csv_path: Path
    line: int  # line in the CSV file (the header is line 1)
    audio: tuple[Path, ...]  # one stereo file (V2) or left and right waveforms (V1)
    depth: Path
    location: str = ""

    def where(self) -> str:
        """Returns 'CSV path, line N': where error messages point the user."""
        return f"{self.csv_path}, line {self.line}"


def resolve_inside(root: Path, relative: str | None, where: str) -> Path:
    """Returns root / relative, refusing a path that leaves the dataset root. The check is
    lexical ("..", absolute paths): a sub-folder that is a symlink to another disk, as large
    datasets are often laid out, stays inside the root."""
    if not relative or not relative.strip():
        raise DataError(f"{where}: empty path")
    root_path = Path(os.path.normpath(Path(root).absolute()))
    path = Path(os.path.normpath(root_path / relative.strip()))
    if not path.is_relative_to(root_path):
        raise DataError(f"{where}: path {relative!r} escapes the dataset root {root}")
    return path


def read_csv(csv_path: Path, needed: tuple[str, ...]) -> list[tuple[int, dict | DataError]]:
    """Returns (line number, row) pairs, the row a DataError where its number of fields is not the
    header's; a missing file or column, or a file that is not UTF-8 text, is a DataError. A
    byte-order mark (as spreadsheet programs save UTF-8) and spaces around column names are ignored."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: split CSV not found")
    rows = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
            columns = reader.fieldnames
            missing = [c for c in needed if c not in columns]
            if missing:
                raise DataError(f"{csv_path}: missing column(s) {missing}; found {columns}")
            for row in reader:
                extra = [v for v in row.pop(None, None) or () if v.strip()]  # empty trailing fields are harmless
                n_fields = sum(v is not None for v in row.values()) + len(extra)
                if n_fields != len(columns):
                    where = f"{csv_path}, line {reader.line_num}"
                    row = DataError(f"{where}: {n_fields} field(s), expected {len(columns)} ({', '.join(columns)})")
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as err:
        raise DataError(f"{csv_path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    return rows


def refs_from_csv(csv_path: Path, columns: tuple[str, ...], make_ref: Callable) -> Iterator[SampleRef | DataError]:
    """Yields, per row of a split CSV, `make_ref(row, line)` (a SampleRef), or the DataError of a
    bad row: its own (`read_csv`) or the one `make_ref` raised (e.g. a path leaving the root)."""
    for line, row in read_csv(csv_path, columns):
        if isinstance(row, DataError):
            yield row
            continue
        try:
            yield make_ref(row, line)
        except DataError as err:
            yield err
