"""Helpers shared by the test files: the tiny training run's command line, reading a CSV, the one
line of a refused command and the rounding error that a tolerance is derived from."""

import csv
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

SR = 44100
EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7: float32's relative rounding step


def summed_error(n_terms: int, scale: float, eps: float = EPS32) -> float:
    """Returns the expected rounding error of a sum of n_terms values of magnitude up to scale when two
    paths add them in another order: sqrt(n_terms) x eps x scale (the rounding errors add up as a
    random walk). A tolerance takes a margin above it."""
    return math.sqrt(n_terms) * eps * float(scale)


def train_args(synth_dir, tmp_path, *extra):
    """Returns `echodepth train`'s arguments for a tiny run on the tiny synthetic data (16 x 16,
    4 base channels, batch 8), its outputs in tmp_path / "results" / "smoke"."""
    return [
        "train",
        "--dataset",
        "synthetic",
        "--data_dir",
        str(synth_dir),
        "--image_size",
        "16",
        "--base_channels",
        "4",
        "--batch_size",
        "8",
        "--results_dir",
        str(tmp_path / "results"),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--experiment_name",
        "smoke",
        "--num_workers",
        "0",
        *extra,
    ]


def rows(path):
    """Returns the rows of a CSV file as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def one_line_error(capsys) -> str:
    """Returns the one non-empty line a refused command wrote to stderr (fails if there are more)."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


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


def tiny_config(synth_dir, root, **settings):
    """Returns the settings of a one-epoch run on the tiny synthetic data, outputs under root; the
    defaults here that do not apply to the chosen components (base_channels) are left out."""
    from echodepth.settings.config import TrainConfig

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


def nan_split() -> dict:
    """Returns a split report whose every statistic is NaN (no valid pixel anywhere)."""
    return {
        "structure": {"base_hf_to_gt": math.nan, "residual_share": math.nan, "residual_edge_to_smooth": math.nan},
        "base_explains_final": math.nan,
        "metrics": {"rmse": math.nan},
        "mean_depth_predictors": {"mean_depth": {"rmse": math.nan}, "per_pixel_mean_depth": {"rmse": math.nan}},
        "analysis_kernel": 8,
        "saturation": {"recordings": 0, "heads": {}},
    }


def cosine_train_args(synth_dir, root: Path, name: str, epochs: int = 4) -> list[str]:
    """Returns `echodepth train`'s arguments for a tiny run with a cosine schedule, 3 warm-up epochs and the
    adaptive loss (the settings with the most state to resume), its outputs in root / "results" / name."""
    return [
        "train", "--dataset", "synthetic", "--data_dir", str(synth_dir), "--image_size", "16",
        "--base_channels", "4", "--batch_size", "8", "--epochs", str(epochs), "--lr_schedule", "cosine",
        "--use_adaptive_loss", "--warmup_epochs", "3", "--results_dir", str(root / "results"),
        "--cache_dir", str(root / "cache"), "--experiment_name", name, "--num_workers", "0",
    ]  # fmt: skip


SPACE = {"lambda_base": {"range": [0.2, 2.0], "log": True}, "lambda_sparse": {"range": [0.01, 0.2], "log": True}}


def tiny_flags(synth_dir, tmp_path, epochs=2) -> list[str]:
    """The base settings of a tiny study: two epochs on the tiny synthetic data."""
    return [
        "--dataset", "synthetic", "--data_dir", str(synth_dir), "--image_size", "16", "--base_channels", "4",
        "--batch_size", "8", "--epochs", str(epochs), "--num_workers", "0", "--cache_dir", str(tmp_path / "cache"),
    ]  # fmt: skip


def space_file(tmp_path, space=None) -> Path:
    """Writes a search space (SPACE unless given) into tmp_path / "space.yaml"; returns its path."""
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space or SPACE))
    return path


def tune_args(study_dir, n_trials, synth_dir, tmp_path, *extra) -> list[str]:
    """Returns `echodepth tune`'s arguments for a tiny study of n_trials over SPACE."""
    return [
        "tune", "--study_dir", str(study_dir), "--n_trials", str(n_trials), "--objective", "rmse",
        "--space", str(space_file(tmp_path)), *tiny_flags(synth_dir, tmp_path), *extra,
    ]  # fmt: skip


def tiny_compare(out, cache_dir, progress):
    """Runs a tiny comparison into `out` (unet_baseline, same_backbone, base_residual; 2 seeds, 2 epochs)
    and returns its report.md."""
    from echodepth.compare import compare

    variants = ["unet_baseline", "same_backbone", "base_residual"]
    overrides = {"cache_dir": str(cache_dir), "epochs": 2}
    return compare(out, preset="tiny", seeds=2, variants=variants, jobs=2, overrides=overrides, progress=progress)
