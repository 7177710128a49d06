"""The dataset layouts: BatVision V1, BatVision V2 and the built-in synthetic data (V2 layout).

Each is a thin `EchoDepthDataset` subclass registered in DATASETS; it says where the rows and
files are. A new layout is one more class here (or in a file of its own) with its registration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .datasets import DATASETS, EchoDepthDataset
from .files import SampleRef, read_ear_pair, read_stereo, refs_from_csv, resolve_inside


@DATASETS.register("batvisionv1")
class BatvisionV1(EchoDepthDataset):
    """BatVision V1: root/{split}.csv with `depth path`, `audio path left`, `audio path right`;
    one .npy waveform per ear (44.1 kHz), depth .npy in mm with NaN / inf for no measurement."""

    name = "batvisionv1"
    default_max_depth_m = 12.0
    columns = ("depth path", "audio path left", "audio path right")

    def csv_path(self) -> Path:
        """Returns the split's CSV file, root/{split}.csv."""
        return self.root / f"{self.split}.csv"

    def describe_sources(self) -> str:
        """Returns where the rows come from, for error messages."""
        return f"CSV {self.csv_path()}"

    def index(self):
        """Yields a SampleRef per CSV row (left and right .npy, depth .npy), or the row's DataError."""
        csv_path = self.csv_path()

        def ref(row: dict, line: int) -> SampleRef:
            where = f"{csv_path}, line {line}"
            left = resolve_inside(self.root, row["audio path left"], where)
            right = resolve_inside(self.root, row["audio path right"], where)
            return SampleRef(csv_path, line, (left, right), resolve_inside(self.root, row["depth path"], where))

        yield from refs_from_csv(csv_path, self.columns, ref)

    def read_audio(self, ref: SampleRef) -> np.ndarray:
        """Returns the (2, N) waveform of the two ears' .npy files (raises DataError naming the file)."""
        return read_ear_pair(*ref.audio, ref.where())


@dataclass
class LocationSettings:
    """The layout setting of datasets with one folder per recording location."""

    location_blacklist: list[str] = field(default_factory=list)  # locations (folder names) left out


@DATASETS.register("batvisionv2")
class BatvisionV2(EchoDepthDataset):
    """BatVision V2: root/<location>/{split}.csv with `depth path`, `depth file name`,
    `audio path`, `audio file name` (file = root / path / name); stereo audio at 44.1 kHz.
    A split is the concatenation over locations, less those in `location_blacklist`."""

    name = "batvisionv2"
    default_max_depth_m = 30.0
    columns = ("depth path", "depth file name", "audio path", "audio file name")
    Settings = LocationSettings

    def locations(self) -> list[Path]:
        """Returns the location folders holding the split's CSV, less the blacklisted ones, sorted."""
        blacklist = set(self.layout_options.get("location_blacklist") or ())
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_dir() and (p / f"{self.split}.csv").exists() and p.name not in blacklist
        )

    def describe_sources(self) -> str:
        """Returns where the rows come from, for error messages."""
        return f"CSV files {self.root}/*/{self.split}.csv"

    def index(self):
        """Yields a SampleRef per CSV row over the locations (stereo audio, depth .npy), or the row's DataError."""
        for location in self.locations():
            csv_path = location / f"{self.split}.csv"

            def ref(row: dict, line: int, csv_path=csv_path, location=location) -> SampleRef:
                where = f"{csv_path}, line {line}"
                audio = resolve_inside(
                    self.root, str(Path(row["audio path"] or "") / (row["audio file name"] or "")), where
                )
                depth = resolve_inside(
                    self.root, str(Path(row["depth path"] or "") / (row["depth file name"] or "")), where
                )
                return SampleRef(csv_path, line, (audio,), depth, location.name)

            yield from refs_from_csv(csv_path, self.columns, ref)

    def read_audio(self, ref: SampleRef) -> np.ndarray:
        """Returns the (2, N) waveform of the stereo file, checked against the sample rate (DataError otherwise)."""
        return read_stereo(ref.audio[0], self.sample_rate_hz, ref.where())


@DATASETS.register("synthetic")
class SyntheticDataset(BatvisionV2):
    """The built-in synthetic data (V2 layout); max_depth and sample rate come from its metadata."""

    name = "synthetic"

    def __init__(self, root, split: str = "train", **kwargs):
        from ..synth import METADATA_FILE

        meta_path = Path(root) / METADATA_FILE
        if not meta_path.is_file():
            raise DataError(f"{meta_path} not found: {root} is not a synthetic dataset written by `echodepth synth`")
        self.metadata = json.loads(meta_path.read_text())
        self.default_max_depth_m = float(self.metadata["max_depth_m"])
        self.default_depth_unit = self.metadata.get("depth_unit", "mm")
        self.sample_rate_hz = int(self.metadata["sample_rate_hz"])
        super().__init__(root, split, **kwargs)
