"""Fixtures: small BatVision V1 / V2 datasets written into tmp_path."""

import csv
import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from echodepth.synth import SynthConfig, generate_dataset

SR = 44100


@pytest.fixture(autouse=True)
def reset_global_seeds():
    """Seeds Python's, NumPy's and torch's global generators before every test, so that a test's
    draws do not depend on which tests ran before it (`train()` seeds the global generator too)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def write_csv(path: Path, columns, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)


def make_v2(root: Path, n_per_split=3, n_samples=9000, depth_shape=(48, 64)) -> Path:
    """Two locations; location A has 16-bit PCM files, location B float WAV files."""
    rng = np.random.default_rng(0)
    for loc, subtype in (("A", "PCM_16"), ("B", "FLOAT")):
        for split in ("train", "val", "test"):
            rows = []
            for i in range(n_per_split):
                name = f"{split}_{i}"
                (root / loc / "audio").mkdir(parents=True, exist_ok=True)
                (root / loc / "depth").mkdir(parents=True, exist_ok=True)
                sf.write(
                    root / loc / "audio" / f"{name}.wav", rng.uniform(-0.5, 0.5, (n_samples, 2)), SR, subtype=subtype
                )
                depth = rng.uniform(500, 40000, depth_shape).astype(np.float32)  # mm, some beyond 30 m
                depth[:4, :4] = 0
                np.save(root / loc / "depth" / f"{name}.npy", depth)
                rows.append([f"{loc}/depth", f"{name}.npy", f"{loc}/audio", f"{name}.wav"])
            write_csv(
                root / loc / f"{split}.csv", ["depth path", "depth file name", "audio path", "audio file name"], rows
            )
    return root


def make_v1(root: Path, n_per_split=3, n_samples=4000, depth_shape=(40, 60)) -> Path:
    """V1: per-ear .npy waveforms, depth in mm with NaN and +-inf."""
    rng = np.random.default_rng(1)
    for split in ("train", "val", "test"):
        rows = []
        for i in range(n_per_split):
            d = root / "2019.08.26"
            (d / "audio").mkdir(parents=True, exist_ok=True)
            (d / "depth").mkdir(parents=True, exist_ok=True)
            stem = f"{split}{i}"
            np.save(d / "audio" / f"{stem}_left.npy", rng.standard_normal(n_samples).astype(np.float32) * 0.1)
            np.save(d / "audio" / f"{stem}_right.npy", rng.standard_normal(n_samples).astype(np.float32) * 0.1)
            depth = rng.uniform(300, 15000, depth_shape)
            depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, np.inf, -np.inf
            np.save(d / "depth" / f"{stem}.npy", depth)
            rows.append(
                [
                    f"2019.08.26/depth/{stem}.npy",
                    f"2019.08.26/audio/{stem}_left.npy",
                    f"2019.08.26/audio/{stem}_right.npy",
                    "unused.png",
                ]
            )
        write_csv(
            root / f"{split}.csv", ["depth path", "audio path left", "audio path right", "camera path left"], rows
        )
    return root


@pytest.fixture
def v2_root(tmp_path):
    return make_v2(tmp_path / "v2")


@pytest.fixture
def v1_root(tmp_path):
    return make_v1(tmp_path / "v1")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A tiny synthetic dataset (8 rooms x 4 poses, 16 x 16 depth), made once per test session."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(
        root,
        SynthConfig(
            n_rooms=8, samples_per_room=4, n_locations=1, image_size=(16, 16), scatter_rays=512, tail_max_order=4
        ),
        workers=2,
        progress=False,
    )
    return root


def tiny_config(synth_dir, root, **settings):
    """Returns the settings of a one-epoch run on the tiny synthetic data, outputs under root; the
    defaults here that do not apply to the chosen components (base_channels) are left out."""
    from echodepth.config import TrainConfig

    values = {
        "dataset": "synthetic",
        "data_dir": str(synth_dir),
        "image_size": 16,
        "base_channels": 4,
        "batch_size": 8,
        "epochs": 1,
        "num_workers": 0,
        "results_dir": str(root / "results"),
        "cache_dir": str(root / "cache"),
    }
    return TrainConfig.from_dict({**values, **settings}, stated=settings)


@pytest.fixture
def small_fs(tmp_path):
    """Returns mount(path, size, read_only=False): a tmpfs of `size` (e.g. "64k") mounted at path."""
    mounted = []

    def mount(path, size="64k", read_only=False):
        if os.geteuid() != 0:
            pytest.skip("a small file system needs root to mount a tmpfs (CI runs the tests as root)")
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder):
    """Fills the file system of folder to the last byte; returns folder."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return folder
