"""Evaluation: a checkpoint on a split with the protocol's metrics, and the mean-depth predictors.

Depends on training's pieces (the data module) and the one inference path; nothing in training
depends on it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import prepare_batch
from .errors import ConfigError
from .inference import Predictor
from .metrics import METRIC_KEYS, aggregate, per_image_metrics
from .rundir import RunDir
from .storage import atomic_write_text, make_dir
from .training import EchoDepthDataModule
from .units import depth_norm_to_m

EVAL_BATCH_SIZE = 64


def evaluate_split(
    predictor: Predictor, datamodule: EchoDepthDataModule, split: str, out_dir=None, progress: bool = True
) -> dict:
    """Returns the protocol's metrics of a predictor on a split; with out_dir, also writes
    {split}_metrics.json and a per-image CSV there."""
    parts, rows = [], []
    dataset = datamodule.dataset(split)
    loader = tqdm(
        datamodule.loader(split, batch_size=EVAL_BATCH_SIZE), desc=f"eval {split}", disable=not progress, leave=False
    )
    for b, prediction in predictor.predict_loader(loader):
        per = per_image_metrics(prediction.final_m, b["depth_m"])
        parts.append({k: v.cpu() for k, v in per.items()})
        for j, i in enumerate(b["index"].tolist()):
            rows.append(
                {"index": i, **dataset.sample_files(i), **{k: float(per[k][j]) for k in (*METRIC_KEYS, "n_valid")}}
            )
    metrics = aggregate({k: torch.cat([p[k] for p in parts]) for k in parts[0]})
    metrics["skipped_samples"] = list(dataset.skipped)  # bad samples left out (one line each)
    if out_dir is not None:
        out_dir = make_dir(out_dir, "--out_dir")
        summary = {"checkpoint": str(predictor.checkpoint_path), "split": split, **metrics}
        rows.sort(key=lambda r: r["index"])
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out_dir / f"{split}_per_image.csv", text.getvalue())
        atomic_write_text(out_dir / f"{split}_metrics.json", json.dumps(summary, indent=2))
    return metrics


def datamodule_for(predictor: Predictor, dataset=None, data_dir=None, progress: bool = True, on_error: str = "raise"):
    """Returns the data module of a predictor's training settings, on another dataset or folder if
    given; depth is clipped and scaled with the checkpoint's max depth, as in training."""
    values = predictor.cfg.to_dict()
    if dataset:
        values["dataset"] = dataset
    if data_dir:
        values["data_dir"] = data_dir
    values["max_depth_m"] = predictor.max_depth_m
    datamodule = EchoDepthDataModule(TrainConfig.from_dict(values), progress=progress, on_error=on_error)
    if not datamodule.root.is_dir():
        raise ConfigError(f"--data_dir {datamodule.root} is not a folder")
    return datamodule


def evaluate(
    checkpoint,
    split: str = "test",
    dataset=None,
    data_dir=None,
    out_dir=None,
    device="auto",
    progress=True,
    precision: str = "fp32",
) -> dict:
    """Returns (and writes, in out_dir or the run's eval/ folder) a checkpoint's metrics on a split."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device, batch_size=EVAL_BATCH_SIZE, precision=precision)
    out_dir = make_dir(Path(out_dir) if out_dir else RunDir.of_checkpoint(checkpoint).eval_dir, "--out_dir")
    datamodule = datamodule_for(predictor, dataset, data_dir, progress, on_error="skip")
    return evaluate_split(predictor, datamodule, split, out_dir=out_dir, progress=progress)


def mean_depth_baselines(datamodule: EchoDepthDataModule, split: str) -> dict[str, dict]:
    """Returns the metrics on `split` of two predictors that ignore the audio: the training set's
    mean depth (one number) and its per-pixel mean depth map."""
    max_depth_m = datamodule.max_depth_m
    total, count = 0.0, 0.0
    for batch in datamodule.loader("train", batch_size=256):
        b = prepare_batch(batch, max_depth_m)
        total = total + (b["depth_norm"] * b["valid"]).sum(0)
        count = count + b["valid"].float().sum(0)
    per_pixel_m = depth_norm_to_m(total / count.clamp(min=1), max_depth_m)
    scalar_m = float(depth_norm_to_m(total.sum() / count.sum(), max_depth_m))
    per = {"mean_depth": [], "per_pixel_mean_depth": []}
    for batch in datamodule.loader(split, batch_size=256):
        gt = prepare_batch(batch, max_depth_m)["depth_m"]
        per["mean_depth"].append(per_image_metrics(torch.full_like(gt, scalar_m), gt))
        per["per_pixel_mean_depth"].append(per_image_metrics(per_pixel_m.expand_as(gt), gt))
    return {name: aggregate({k: torch.cat([p[k] for p in parts]) for k in parts[0]}) for name, parts in per.items()}


def format_comparison(test: dict, baselines: dict) -> str:
    """Returns the test metrics next to the mean-depth predictors' as a small table."""
    rows = [("model (best checkpoint)", test)]
    rows += [(name.replace("_", " ") + " predictor", m) for name, m in baselines.items()]
    keys = ("rmse", "abs_rel", "mae", "delta1", "log10")
    lines = [f"{'test split':<34}" + "".join(f"{k:>10}" for k in keys)]
    for name, m in rows:
        lines.append(f"{name:<34}" + "".join(f"{m[k]:>10.4f}" for k in keys))
    best_baseline = min(m["rmse"] for _, m in rows[1:])
    if not best_baseline > 0:
        lines.append("the per-pixel mean depth is exact on this split: is the test split the training split?")
        return "\n".join(lines)
    gain = 1 - test["rmse"] / best_baseline
    if gain > 0:
        lines.append(f"RMSE {100 * gain:.1f}% lower than the better mean-depth predictor")
    else:
        lines.append(f"RMSE {100 * -gain:.1f}% HIGHER than the better mean-depth predictor")
    return "\n".join(lines)
