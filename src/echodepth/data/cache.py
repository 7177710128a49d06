"""On-disk, memory-mapped feature cache: decode, STFT and resize once per sample, ever.

A cache lives in CACHE_ROOT/<key>/ where key hashes everything that decides its content:
the dataset's files (path, size, modification time), split, feature settings, image size and
max_depth (`EchoDepthDataset.cache_identity()`). A changed setting or file gives a new key, so a
new cache. A cache is built in a temporary folder and renamed into place only when complete; an
interrupted build is never used (its folder is removed once its process is gone). One process
builds a given cache while the others wait on its lock, then share it. meta.json records each
array's size and checksum, and its own checksum: a damaged cache is named in one line when
opened, and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..errors import DataError
from ..runs.storage import (
    FileLock,
    atomic_write_text,
    disk_full_as_error,
    ensure_space,
    make_dir,
    move_into_place,
    open_npy_map,
    save_npy,
)
from .batch import FEATURE_IMAGE
from .cache_files import (
    META_CHECKSUM,
    CacheError,
    array_records,
    cache_key,
    check_folder,
    dataset_from_identity,
    meta_checksum,
    remove_dead_partials,
)
from .datasets import EchoDepthDataset

DEFAULT_CACHE_ROOT = Path(os.environ.get("ECHODEPTH_CACHE", ".echodepth_cache"))


class CachedDataset(Dataset):
    """Items like EchoDepthDataset's, read from memory-mapped arrays, in their stored types:
    feature images float16 (by default) and depth as uint16 millimetres (`depth_mm`), 2 bytes a
    pixel each. `prepare_batch` turns them into float32 metres, normalised depth and a valid mask, on
    the training device, so the loader moves as few bytes as possible.

    `__getitems__` serves a whole batch with one read per array (the DataLoader calls it when
    present), rows in file order, which is what makes this path fast; use `collate_batch`.
    """

    def __init__(self, folder: Path, checksums: bool = True):
        self.folder = Path(folder)
        self.meta = check_folder(self.folder, checksums)  # CacheError when damaged
        self.feature_image = np.load(self.folder / "features.npy", mmap_mode="r")  # (N, C, H, W)
        self.depth_mm = np.load(self.folder / "depth_mm.npy", mmap_mode="r")  # (N, 1, H, W)
        self.skipped: list[str] = self.meta.get("skipped", [])
        self.max_depth_m = float(self.meta["identity"]["max_depth_m"])

    def __len__(self) -> int:
        return len(self.depth_mm)

    @property
    def n_channels(self) -> int:
        """The number of feature-image channels C."""
        return int(self.feature_image.shape[1])

    def sample_files(self, i: int) -> dict[str, str]:
        """Returns the files of row i: `audio` (one path, or left;right) and `depth`."""
        return dict(self.meta["samples"][i])

    def __getitems__(self, indices) -> dict:
        # a batch's order does not matter: read its rows sorted, walking the file forwards
        idx = np.sort(np.asarray(list(indices)))
        return {
            FEATURE_IMAGE: torch.from_numpy(self.feature_image[idx]),
            "depth_mm": torch.from_numpy(self.depth_mm[idx]),
            "index": torch.from_numpy(idx),
        }

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def build_cache(
    dataset: EchoDepthDataset,
    cache_root=None,
    *,
    feature_dtype: str = "float16",
    progress: bool = True,
    batch_size: int = 64,
    log=print,
) -> CachedDataset:
    """Returns the cached form of `dataset`, building it first if no complete, intact cache exists.

    A dataset with on_error="skip" and check_samples=False is checked here, in the cache's
    single pass over the files (its bad samples are left out and listed in `skipped`); with
    check_samples=True the dataset has already read every file once.
    Features are stored as float16 by default (half the bytes; spectrogram magnitudes need no
    more precision), depth as uint16 millimetres (the sensors' own resolution).
    """
    cache_root = Path(cache_root or DEFAULT_CACHE_ROOT)
    identity = dataset.cache_identity()
    identity["feature_dtype"] = feature_dtype
    key = cache_key(identity)
    folder = cache_root / f"{dataset.name}-{dataset.split}-{key}"
    with FileLock(cache_root / f"{folder.name}.lock"):  # other processes wait, then share it
        if folder.exists():
            try:
                return CachedDataset(folder)
            except CacheError as err:
                log(f"{err}; rebuilding it")
                shutil.rmtree(folder)
        remove_dead_partials(cache_root, folder.name)
        tmp = make_dir(cache_root / f"{folder.name}.partial-{os.getpid()}", "cache folder")
        try:
            kept = _write_arrays(dataset, tmp, feature_dtype, progress, batch_size)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        meta = {
            "key": key,
            "identity": {k: v for k, v in identity.items() if k != "files"},
            "n_samples": len(kept),
            "skipped": list(dataset.skipped),
            "samples": [dataset.sample_files(i) for i in kept],
            "arrays": array_records(tmp),
        }
        meta[META_CHECKSUM] = meta_checksum(meta)
        with disk_full_as_error(tmp / "meta.json", cleanup=[tmp]):
            atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1))
        move_into_place(tmp, folder)
    return CachedDataset(folder, checksums=False)  # just written


def _write_arrays(
    dataset: EchoDepthDataset, folder: Path, feature_dtype: str, progress: bool, batch_size: int
) -> list[int]:
    """Writes features.npy and depth_mm.npy of the dataset's good samples; returns their indices."""
    n = len(dataset)
    h, w = dataset.feature_config.image_size
    dh, dw = dataset.depth_size
    shape = (n, dataset.n_channels, h, w)
    needed = n * (h * w * dataset.n_channels * np.dtype(feature_dtype).itemsize + dh * dw * 2)
    ensure_space(folder, needed, f"the feature cache of {n} samples")
    feature_image = open_npy_map(folder / "features.npy", feature_dtype, shape)
    depth = open_npy_map(folder / "depth_mm.npy", np.uint16, (n, 1, dh, dw))
    kept: list[int] = []
    bar = tqdm(total=n, unit="sample", desc=f"cache {dataset.split}", disable=not progress)
    with bar:
        for indices, waves, depths in dataset.load_batches(batch_size):
            bar.update(min(batch_size, n - bar.n))
            if not indices:
                continue
            rows = slice(len(kept), len(kept) + len(indices))
            feature_image[rows] = dataset.extract_feature_image(waves).numpy().astype(feature_dtype)
            depth[rows] = np.round(torch.stack(depths).numpy() * 1000.0).astype(np.uint16)
            kept.extend(indices)
    feature_image.flush()
    depth.flush()
    del feature_image, depth
    if not kept:
        raise DataError(
            f"split {dataset.split!r} of {dataset.root}: every sample is bad ({len(dataset.skipped)} skipped)"
        )
    if len(kept) < n:  # some samples were skipped: shrink the arrays to the kept rows
        _shrink(folder, len(kept))
    return kept


def _shrink(folder: Path, n: int) -> None:
    for name in ("features.npy", "depth_mm.npy"):
        arr = np.load(folder / name, mmap_mode="r")[:n]
        save_npy(folder / name, np.ascontiguousarray(arr))
        del arr


def verify_sources(folder: Path, batch_size: int = 64) -> list[str]:
    """Returns the rows of a cache whose source files no longer give the cached values (a file
    changed in place with the same size and time escapes the cache key); [] when all agree."""
    cached = CachedDataset(folder)
    identity = cached.meta["identity"]
    dataset = dataset_from_identity(identity, on_error="skip")
    row_of = {tuple(cached.sample_files(i).values()): i for i in range(len(cached))}
    mismatches = []
    for indices, waves, depths in dataset.load_batches(batch_size):
        if not indices:
            continue
        feature_image = dataset.extract_feature_image(waves).numpy().astype(cached.feature_image.dtype)
        for k, i in enumerate(indices):
            files = dataset.sample_files(i)
            row = row_of.get(tuple(files.values()))
            depth_mm = np.round(depths[k].numpy() * 1000.0).astype(np.uint16)
            if row is None:
                mismatches.append(f"{files['audio']}: not in the cache")
            elif not np.array_equal(depth_mm, cached.depth_mm[row]):
                mismatches.append(f"{files['depth']}: depth differs from the cached one")
            elif not np.allclose(
                feature_image[k].astype(np.float32), cached.feature_image[row].astype(np.float32), 1e-3, 1e-3
            ):
                mismatches.append(f"{files['audio']}: feature image differs from the cached one")
    return mismatches
