"""A comparison's results: per variant, per-seed curves, test metrics and structure metrics,
and the small statistics the report and verdicts share."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from ..diagnose.measure import StructureSums
from ..diagnose.saturation import PixelSpread, saturation_shares
from ..inference.predictor import Predictor
from ..training.datamodule import EchoDepthDataModule
from .variants import Run


@torch.no_grad()
def structure_metrics(predictor: Predictor, datamodule, split: str = "test") -> dict[str, float]:
    """Returns the structure metrics of a predictor on a split (analysis kernel from its image size)
    and its heads' saturation across the split's recordings (`saturation_shares`)."""
    structure = StructureSums(predictor.cfg.image_size)
    spread = PixelSpread.for_predictor(predictor)
    for b, p in predictor.predict_loader(datamodule.loader(split, batch_size=64)):
        structure.add(p, b["depth_m"])
        spread.add({"base": p.base_m, "residual": p.residual_m})
    return {**structure.metrics(), **saturation_shares(spread.summary())}


@torch.no_grad()
def sample_predictions(predictor: Predictor, datamodule, n: int = 4) -> dict:
    """Returns the first n test samples' base, residual, final and ground truth (N, H, W), metres."""
    batch, prediction = next(iter(predictor.predict_loader(datamodule.loader("test", batch_size=n))))
    maps = (prediction.base_m, prediction.residual_m, prediction.final_m, batch["depth_m"])
    return dict(zip(("base", "residual", "final", "gt"), (m[:n, 0].cpu().numpy() for m in maps)))


def collect(runs: list[Run], datamodule) -> dict:
    """Returns, per variant, per-seed curves, test metrics and structure metrics, and the first
    seed's predictions for a few test samples. `datamodule` serves the runs with its feature
    settings; a run trained on other features (ild_ipd, gcc_phat) reads the data with its own."""
    results: dict[str, dict] = {}
    datamodules = {feature_key(datamodule.feature_config.to_dict()): datamodule}
    for run in runs:
        rows = run.run_dir.read_metrics()
        test = json.loads(run.run_dir.test_metrics.read_text())
        entry = results.setdefault(
            run.variant, {"curves": [], "base": [], "residual": [], "test": [], "structure": [], "baselines": test}
        )
        entry["curves"].append([r["val/rmse"] for r in rows])
        entry["base"].append([r["val/mean_abs_base"] for r in rows])
        entry["residual"].append([r["val/mean_abs_residual"] for r in rows])
        entry["test"].append(test["model"])
        predictor = Predictor.from_checkpoint(run.run_dir.best_checkpoint, device="cpu")
        key = feature_key(predictor.feature_config.to_dict())
        if key not in datamodules:
            datamodules[key] = EchoDepthDataModule(run.cfg, progress=False)
        entry["structure"].append(structure_metrics(predictor, datamodules[key]))
        if "samples" not in entry:
            entry["samples"] = sample_predictions(predictor, datamodules[key])
    return results


def feature_key(features: dict) -> str:
    """Returns a feature configuration's settings as one string (runs with equal ones share a data module)."""
    return json.dumps(features, sort_keys=True)


def mean_std(values) -> tuple[float, float]:
    """Returns the mean and sample standard deviation of the finite values (NaN, NaN if none; the
    standard deviation is NaN for one value: one seed has no spread to show)."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def fmt(mean: float, std: float | None = None, digits: int = 3) -> str:
    """Returns "mean ± std" with `digits` decimals, "mean" when std is None or NaN (one value), or
    "n/a" for a non-finite mean."""
    if not np.isfinite(mean):
        return "n/a"
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def mean_curve(curves: list[list[float]]) -> list[float]:
    """Returns the mean over seeds of curves, cut to the shortest."""
    n = min(len(c) for c in curves)
    return list(np.asarray([c[:n] for c in curves]).mean(0))
