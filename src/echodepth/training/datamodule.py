"""The Lightning data module: datasets and loaders of one configuration, built once.

With dataset synthetic and no data_dir, the built-in synthetic data is generated once into the
cache folder. Training, evaluation and comparison all read data through this module.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..audio.recordings import load_npy
from ..data import DATASETS, FeatureConfig, build_cache, collate_batch, in_use_lock
from ..data.features import HELD_BY_FEATURE_CONFIG
from ..errors import ConfigError, DataError
from ..runs.storage import FileLock
from ..settings.config import TrainConfig
from .sampler import EpochShuffleSampler


def synth_config_for(cfg: TrainConfig):
    """Returns the settings of the built-in synthetic data used when no data_dir is given."""
    from ..synth import SynthConfig

    side = cfg.synth_image_size
    return SynthConfig(seed=0, n_rooms=cfg.synth_rooms, image_size=(side, side))


# an image_size more than this many times the depth maps' larger side is warned about: each map is
# upsampled (nearest), which adds no detail, and the cache and every step grow with its square
UPSAMPLING_WARNED = 2.0


def upsampling_warning(image_size: int, raw) -> str | None:
    """Returns a one-line warning when `image_size` is far above the resolution of a split's depth maps
    (the first map's, read once), naming the factor; None when it is not, or the map cannot be read
    (the cache build then names the file)."""
    ref = raw.refs[0]
    try:
        shape = load_npy(ref.depth, "depth file").shape[:2]
    except DataError:
        return None
    factor = image_size / max(shape)
    if factor <= UPSAMPLING_WARNED:
        return None
    return (
        f"warning: --image_size {image_size} is {factor:.1f}x the data's depth maps ({shape[0]} x {shape[1]}, "
        f"{ref.depth.name}): each is upsampled {factor:.1f}x, adding no detail, and the cache and every step "
        f"grow {factor * factor:.0f}x; --image_size {max(shape)} or less keeps their resolution"
    )


def default_synthetic_dir(cfg: TrainConfig) -> Path:
    """Returns the folder of the built-in synthetic data: under the cache folder, named by a hash of
    its settings (other settings, another folder)."""
    settings = json.dumps(synth_config_for(cfg).to_dict(), sort_keys=True)
    return Path(cfg.cache_dir) / f"synthetic-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"


class EchoDepthDataModule(L.LightningDataModule):
    """Datasets and loaders of one configuration; builds the synthetic data and caches once (rank 0)."""

    def __init__(self, cfg: TrainConfig, progress: bool = True, on_error: str = "raise"):
        super().__init__()
        self.cfg = cfg
        self.progress = progress
        self.on_error = on_error  # "skip": bad samples are left out and listed in `skipped`
        self._raw: dict[str, object] = {}
        self._ready: dict[str, object] = {}
        self._in_use: list[FileLock] = []  # shared locks on the cache folders read: `cache clear` leaves them
        self._warned = False  # the upsampling warning is said once

    def hold(self, folder: Path) -> None:
        """Marks a cache folder (features, or the built-in data) as in use by this process until it
        ends: `echodepth cache clear` then leaves it alone."""
        lock = in_use_lock(folder)
        lock.acquire()
        self._in_use.append(lock)

    def has_split(self, split: str) -> bool:
        """Whether the data has the split's CSV file(s): root/{split}.csv (V1) or
        root/<location>/{split}.csv (V2, synthetic)."""
        return any(self.root.glob(f"{split}.csv")) or any(self.root.glob(f"*/{split}.csv"))

    @property
    def root(self) -> Path:
        """The dataset's root folder: --data_dir, or the built-in synthetic data's folder (dataset
        synthetic without --data_dir); another dataset without --data_dir is a ConfigError."""
        if self.cfg.data_dir:
            return Path(self.cfg.data_dir)
        if self.cfg.dataset != "synthetic":
            raise ConfigError(
                f"--data_dir is required for dataset {self.cfg.dataset} "
                "(the BatVision data is not downloaded by echodepth)"
            )
        return default_synthetic_dir(self.cfg)

    def requested_feature_config(self) -> FeatureConfig:
        """Returns the feature settings the configuration asks for (the dataset replaces the sample
        rate by its data's: see `feature_config`)."""
        cfg = self.cfg
        return FeatureConfig(
            audio_format=cfg.audio_format,
            log=cfg.log_compression,
            image_size=cfg.input_hw,
            cut=cfg.audio_window != "whole",
            window_start_ms=cfg.window_start_ms,
            align_to_emission=cfg.audio_window == "emission",
            settings={k: v for k, v in cfg.settings_for("audio_format").items() if k not in HELD_BY_FEATURE_CONFIG},
        )

    def prepare_data(self) -> None:
        """Builds the built-in synthetic data once (one process builds, the others wait on its lock) and,
        with the cache, the train and val caches; a root that is not a folder is a ConfigError. Warns
        first, once, when image_size is far above the depth maps' resolution (`upsampling_warning`)."""
        if not self.cfg.data_dir and self.cfg.dataset == "synthetic":
            from ..synth import generate_dataset, is_complete

            synth_cfg = synth_config_for(self.cfg)
            with FileLock(self.root.with_name(self.root.name + ".lock")):  # one builder, the others wait
                if not is_complete(self.root, synth_cfg):
                    print(f"building the built-in synthetic dataset in {self.root} (once)")
                    generate_dataset(self.root, synth_cfg, progress=self.progress)
                self.hold(self.root)
        if not self.root.is_dir():
            raise ConfigError(f"--data_dir {self.root} is not a folder")
        warning = upsampling_warning(self.cfg.image_size, self.raw_dataset("train"))
        if warning and not self._warned:  # before the cache is built at that size (Lightning calls this again)
            print(warning, file=sys.stderr)
            self._warned = True
        if self.cfg.cache:
            for split in ("train", "val"):
                self.dataset(split)

    def raw_dataset(self, split: str):
        """Returns the split read sample by sample from the files (no cache)."""
        if split not in self._raw:
            layout = self.cfg.settings_for("dataset", changed_only=True)  # at its defaults: no option, one cache
            self._raw[split] = DATASETS.get(self.cfg.dataset)(
                self.root,
                split,
                feature_config=self.requested_feature_config(),
                max_depth_m=self.cfg.max_depth_m,
                on_error=self.on_error,
                check_samples=not self.cfg.cache,  # the cache build checks each sample in its one pass
                waveforms=not self.cfg.cache,  # uncached: STFTs in batches on the training device
                depth_size=(self.cfg.image_size, self.cfg.image_size),
                depth_unit=self.cfg.depth_unit,
                **layout,
            )
        return self._raw[split]

    def dataset(self, split: str):
        """Returns the split as used for training: cached when cfg.cache, else per-sample."""
        if split not in self._ready:
            raw = self.raw_dataset(split)
            self._ready[split] = build_cache(raw, self.cfg.cache_dir, progress=self.progress) if self.cfg.cache else raw
            if self.cfg.cache:
                self.hold(self._ready[split].folder)
        return self._ready[split]

    @property
    def max_depth_m(self) -> float:
        """The depth range in metres (the training split's: --max_depth_m or the dataset's default)."""
        return self.raw_dataset("train").max_depth_m

    @property
    def feature_config(self) -> FeatureConfig:
        """Returns the feature settings in force (the data's sample rate included)."""
        return self.raw_dataset("train").feature_config

    @property
    def n_channels(self) -> int:
        """The number of feature-image channels C (the network's input channels)."""
        return self.raw_dataset("train").n_channels

    def loader(self, split: str, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        """Returns a loader over a split yielding batches of the batch contract (`data/batch.py`): epoch-
        shuffled and without the last partial batch when `shuffle`, batch size at most the split's length."""
        ds = self.dataset(split)
        # the cache serves whole batches from memory-mapped arrays faster than worker processes
        # can pass them back, so it runs in the main process
        workers = 0 if self.cfg.cache else self.cfg.num_workers
        bs = min(batch_size or self.cfg.batch_size, len(ds))
        return DataLoader(
            ds,
            batch_size=bs,
            sampler=EpochShuffleSampler(len(ds), self.cfg.seed) if shuffle else None,
            drop_last=shuffle and len(ds) > bs,
            num_workers=workers,
            collate_fn=collate_batch,
            persistent_workers=workers > 0,
            # page-locked batches copy to a GPU asynchronously, overlapping the previous step
            pin_memory=torch.cuda.is_available() and self.cfg.accelerator != "cpu",
        )

    def train_dataloader(self):
        """Returns the training loader (shuffled per epoch from the seed)."""
        return self.loader("train", shuffle=True)

    def val_dataloader(self):
        """Returns the validation loader (file order)."""
        return self.loader("val")

    def test_dataloader(self):
        """Returns the test loader (file order)."""
        return self.loader("test")
