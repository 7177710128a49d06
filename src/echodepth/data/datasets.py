"""The dataset base class and the dataset registry; the layouts themselves are in `layouts.py`.

Each layout is an `EchoDepthDataset` subclass registered with `@DATASETS.register("name")`; it
says where the rows and files are (`index`, `read_audio`) and which training settings it takes
(its `Settings` dataclass). A dataset indexes the rows of its split CSV(s) and loads, per sample, the
binaural waveform (2, N) and the depth map. Depth: the file's unit (`depth_unit`, millimetres
unless stated) -> metres, checked for plausibility (a median valid depth under 10 cm or beyond 3 x
max depth names the unit as the likely cause); NaN, +-inf and values <= 0 become 0
(invalid); clipped to max_depth; resized to the image size with nearest-neighbour sampling.
Bilinear resizing would blend a near and a far surface into a depth that exists nowhere, and
blend invalid zeros into valid pixels; nearest sampling keeps every output pixel a measured
depth (or invalid), at the cost of some aliasing when shrinking a lot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..audio.recordings import check_not_silent, load_npy
from ..errors import ConfigError, DataError
from ..registry import Registry
from ..units import DEPTH_UNITS_PER_M, check_depth_unit
from .batch import FEATURE_IMAGE
from .features import AudioFeatures, FeatureConfig, min_window_samples
from .files import SampleRef

DATASETS = Registry("dataset")


class EmptySplitError(DataError):
    """A split that holds no sample at all (no row in its CSVs): an empty split, not a bad sample."""


class EchoDepthDataset(Dataset):
    """Base class. Items are dicts (see `batch.py` for the batch contract): `feature_image`
    (C, H, W) float32, or with `waveforms` the cut `waveform` (2, L) float32; `depth_m` (1, H, W)
    metres, 0 = invalid; `valid` (1, H, W) bool; `index`. `prepare_batch` adds the normalised depth.

    on_error="raise" stops at
    the first bad sample with a one-line DataError; "skip" leaves bad rows out and lists them in
    `self.skipped`, and (with check_samples) loads every sample up front to find the bad ones.
    """

    name = "base"
    default_max_depth_m = 10.0
    default_depth_unit = "mm"  # BatVision V1 and V2 store millimetres
    sample_rate_hz = 44100
    Settings: type | None = None  # the layout's options (a dataclass, e.g. location_blacklist), see components

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        feature_config: FeatureConfig | None = None,
        max_depth_m: float | None = None,
        on_error: str = "raise",
        check_samples: bool = True,
        waveforms: bool = False,
        depth_size: tuple[int, int] | None = None,
        depth_unit: str | None = None,
        **layout_options,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"dataset root {self.root} is not a folder")
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        allowed = [f.name for f in dataclasses.fields(self.Settings)] if self.Settings else []
        unknown = sorted(set(layout_options) - set(allowed))
        if unknown:
            raise ConfigError(f"dataset {self.name!r} takes no option(s) {unknown}; allowed: {allowed}")
        self.depth_unit = depth_unit or self.default_depth_unit
        if self.depth_unit not in DEPTH_UNITS_PER_M:
            raise ConfigError(f"depth_unit {self.depth_unit!r}: expected one of {list(DEPTH_UNITS_PER_M)}")
        self.split = split
        self.feature_config = feature_config or FeatureConfig()
        # depth maps come out at depth_size; default: the feature image's size
        self.depth_size = tuple(int(v) for v in (depth_size or self.feature_config.image_size))
        if self.feature_config.sample_rate_hz != self.sample_rate_hz:  # the data's rate decides
            self.feature_config = dataclasses.replace(self.feature_config, sample_rate_hz=self.sample_rate_hz)
        self.max_depth_m = float(max_depth_m or self.default_max_depth_m)
        self.on_error = on_error
        self.layout_options = layout_options
        self.skipped: list[str] = []
        self.refs: list[SampleRef] = []
        for ref in self.index():
            if isinstance(ref, DataError):  # a bad row (e.g. a path leaving the root)
                if on_error == "raise":
                    raise ref
                self.skipped.append(str(ref))
            else:
                self.refs.append(ref)
        if not self.refs and self.skipped:
            bad = f"every row is bad ({len(self.skipped)}), e.g. {self.skipped[0]}"
            raise DataError(f"split {split!r} of {self.root}: {bad}")
        if not self.refs:
            sources = self.describe_sources()
            raise EmptySplitError(f"split {split!r} of {self.root} has no samples: it is empty ({sources})")
        self.feature_extractor = AudioFeatures(self.feature_config, self.max_depth_m)
        # items carry the cut waveform; a consumer makes the feature images in batches on its device
        self.waveforms = waveforms
        if waveforms and not self.feature_config.cut:
            raise ConfigError("waveform items need the cut (equal lengths to batch); set FeatureConfig.cut")
        if on_error == "skip" and check_samples:
            self.drop_bad_samples()

    def drop_bad_samples(self) -> None:
        """Loads every sample once, leaving out (and listing in `skipped`) the bad ones."""
        good = []
        for ref in self.refs:
            try:
                self.load_raw(ref)
                good.append(ref)
            except DataError as err:
                self.skipped.append(str(err))
        self.refs = good
        if not self.refs:
            raise DataError(f"split {self.split!r} of {self.root}: every sample is bad ({len(self.skipped)} skipped)")

    # --- layout: subclasses say where the rows and files are
    def index(self):
        """Yields a SampleRef per CSV row, or the DataError of a bad row."""
        raise NotImplementedError

    def describe_sources(self) -> str:
        """Returns where the split's rows are read from, for messages (e.g. "CSV root/train.csv")."""
        raise NotImplementedError

    def read_audio(self, ref: SampleRef) -> np.ndarray:
        """Returns a sample's (2, N) float32 waveform as its files hold it (checks follow in `load_audio`);
        an unreadable file is a DataError naming the CSV line."""
        raise NotImplementedError

    # --- shared loading and checks
    def min_audio_samples(self) -> int:
        """Returns the fewest samples a recording needs: the cut's length for the max depth."""
        return min_window_samples(self.feature_config, self.max_depth_m)

    def load_audio(self, ref: SampleRef) -> np.ndarray:
        """Returns the (2, N) float32 waveform, checked."""
        audio = self.read_audio(ref)
        name = ref.audio[0] if len(ref.audio) == 1 else f"{ref.audio[0]} / {ref.audio[1].name}"
        if audio.shape[1] == 0:
            raise DataError(f"{ref.where()}: {name}: empty audio")
        if not np.isfinite(audio).all():
            raise DataError(f"{ref.where()}: {name}: audio contains NaN or infinite values")
        need = self.min_audio_samples()
        if audio.shape[1] < need:
            raise DataError(
                f"{ref.where()}: {name}: truncated audio, {audio.shape[1]} samples, expected at least {need}"
            )
        check_not_silent(audio, f"{ref.where()}: {name}")
        return audio

    def read_depth_m(self, ref: SampleRef) -> np.ndarray:
        """Returns the (H, W) float32 depth in metres at the file's own size, its values as the file
        holds them (NaN, +-inf, zero and negative values untouched: an evaluation protocol reads them
        as its paper's loader did). A file that is not a 2-D numeric map is a DataError naming it."""
        depth = load_npy(ref.depth, f"{ref.where()}: depth file")
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2 or min(depth.shape) < 2:
            raise DataError(
                f"{ref.where()}: depth file {ref.depth} has shape {depth.shape} and dtype {depth.dtype}, "
                "expected a 2-D numeric (H, W) map"
            )
        return depth.astype(np.float32) / DEPTH_UNITS_PER_M[self.depth_unit]

    def load_depth_m(self, ref: SampleRef) -> np.ndarray:
        """Returns the (H, W) depth in metres, 0 where invalid, clipped to max_depth. A map with no
        valid pixel (at its own size or at `depth_size`), or whose depths are implausible in
        `depth_unit`, is a DataError naming the file."""
        depth_m = self.read_depth_m(ref)
        depth_m[~np.isfinite(depth_m) | (depth_m < 0)] = 0.0
        valid = depth_m > 0
        if not valid.any():
            raise DataError(f"{ref.where()}: depth file {ref.depth} has no valid pixel")
        check_depth_unit(
            float(np.median(depth_m[valid])),
            self.depth_unit,
            self.max_depth_m,
            f"{ref.where()}: depth file {ref.depth}",
        )
        depth_m = np.minimum(depth_m, self.max_depth_m)
        if not (self.depth_tensor(depth_m) > 0).any():
            raise DataError(
                f"{ref.where()}: depth file {ref.depth}: none of its {int(valid.sum())} valid pixel(s) of "
                f"{depth_m.size} survives the resize to {self.depth_size[0]} x {self.depth_size[1]} (nearest); "
                "too sparse for this size: densify the map or train at a larger --image_size"
            )
        return depth_m

    def load_raw(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray]:
        """Returns a sample's checked (2, N) waveform and (H, W) depth in metres; a bad file is a DataError."""
        return self.load_audio(ref), self.load_depth_m(ref)

    def depth_tensor(self, depth_m: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Returns the (1, H, W) depth in metres resized (nearest) to `size` (default: depth_size)."""
        depth = torch.from_numpy(depth_m)[None, None]
        return F.interpolate(depth, size=tuple(size or self.depth_size), mode="nearest-exact")[0]

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> dict:
        # the dataset authors' per-sample path: decode, STFT and resize inside __getitem__
        audio, depth_m = self.load_raw(self.refs[i])
        depth = self.depth_tensor(depth_m)
        item = {"depth_m": depth, "valid": depth > 0, "index": i}
        if self.waveforms:  # the feature image is made later, a batch at a time, where the batch goes
            window = self.feature_extractor.window(torch.from_numpy(audio)[None])[0]
            return {**item, "waveform": window.contiguous()}
        with torch.no_grad():
            feature_image = self.feature_extractor(torch.from_numpy(audio)[None])[0]
        return {**item, FEATURE_IMAGE: feature_image}

    @property
    def n_channels(self) -> int:
        """Returns the number of feature channels of an item."""
        return self.feature_extractor.n_channels

    def sample_files(self, i: int) -> dict[str, str]:
        """Returns the files of sample i: `audio` (one path, or left;right) and `depth`."""
        ref = self.refs[i]
        return {"audio": ";".join(str(p) for p in ref.audio), "depth": str(ref.depth)}

    def load_batches(self, batch_size: int):
        """Yields (indices, waveforms, depths) for consecutive samples, batch_size rows at a time:
        (2, N) float32 arrays and (1, H, W) depth tensors in metres at the image size. A bad sample
        raises its DataError (on_error="raise") or is left out and added to `skipped`; every
        batch of rows is yielded, so a caller can count progress, even when all of it was bad."""
        for start in range(0, len(self.refs), batch_size):
            indices, waves, depths = [], [], []
            for i in range(start, min(start + batch_size, len(self.refs))):
                try:
                    audio, depth_m = self.load_raw(self.refs[i])
                except DataError as err:
                    if self.on_error == "raise":
                        raise
                    self.skipped.append(str(err))
                    continue
                indices.append(i)
                waves.append(audio)
                depths.append(self.depth_tensor(depth_m))
            yield indices, waves, depths

    @torch.no_grad()
    def extract_feature_image(self, waves: list[np.ndarray]) -> torch.Tensor:
        """Returns the (B, C, H, W) feature images of (2, N) waveforms: one batched pass when their
        lengths agree, else one by one."""
        tensors = [torch.from_numpy(w) for w in waves]
        if len({t.shape[1] for t in tensors}) == 1:
            return self.feature_extractor(torch.stack(tensors))
        return torch.cat([self.feature_extractor(t[None]) for t in tensors])

    def cache_identity(self) -> dict:
        """Returns everything that decides the cached arrays' content (for the cache key)."""
        files = []
        for ref in self.refs:
            for p in (*ref.audio, ref.depth):
                st = p.stat() if p.exists() else None
                files.append([str(p), st.st_size if st else -1, st.st_mtime_ns if st else -1])
        return {
            "dataset": self.name,
            "root": str(self.root.resolve()),
            "split": self.split,
            "layout": {
                k: sorted(v) if isinstance(v, (list, tuple, set)) else v for k, v in self.layout_options.items()
            },
            "features": self.feature_config.to_dict(),  # stored under this name: existing caches keep their key
            "depth_size": list(self.depth_size),
            "max_depth_m": self.max_depth_m,
            "depth_unit": self.depth_unit,
            "on_error": self.on_error,
            "files": files,
        }


def build_dataset(name: str, root, split: str = "train", **kwargs) -> EchoDepthDataset:
    """Returns the dataset registered as `name` (batvisionv1, batvisionv2, synthetic, ...) for one split."""
    return DATASETS.get(name)(root, split, **kwargs)
