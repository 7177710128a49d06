"""What `diagnose` measures: the decomposition on a split (through the one inference path) and
the training history in metrics.csv."""

from __future__ import annotations

import json
import math

import torch

from ..evaluate import EVAL_BATCH_SIZE, check_sample_rate, mean_depth_baselines
from ..inference.predictor import Predictor
from ..metrics import METRIC_KEYS, aggregate, analysis_kernel, finish_structure, per_image_metrics, structure_sums
from ..runs.rundir import RunDir
from .saturation import PixelSpread

N_EXAMPLES = 2  # best and worst samples shown in the figure
SPIKE_FACTOR = 1.5  # an epoch's training loss above this times the lowest before it is a spike


class StructureSums:
    """Accumulates the structure metrics' sums (`metrics.structure_sums`) over batches, with the
    analysis low-pass kernel of the training image size (`metrics.analysis_kernel`)."""

    def __init__(self, image_size: int):
        self.kernel = analysis_kernel(image_size)
        self.sums: dict[str, float] = {}

    def add(self, prediction, depth_m: torch.Tensor) -> None:
        """Adds a batch: a `Prediction` (base_m, residual_m, final_m) and the (B, 1, H, W) ground
        truth in metres (0 = invalid)."""
        batch_sums = structure_sums(
            prediction.base_m, prediction.residual_m, prediction.final_m, depth_m, kernel=self.kernel
        )
        for k, v in batch_sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def metrics(self) -> dict[str, float]:
        """Returns the structure metrics of every batch added (`metrics.finish_structure`)."""
        return finish_structure(self.sums)


class ExtremeSamples:
    """Keeps the n samples with the lowest and the n with the highest RMSE seen so far."""

    def __init__(self, n: int):
        self.n = n
        self.samples: list[tuple[float, list]] = []

    def add(self, rmse: torch.Tensor, maps: list[torch.Tensor]) -> None:
        """Adds a batch: per-image RMSE (B,) in metres and its maps, each (B, 1, H, W); NaN RMSEs are left out."""
        for j, value in enumerate(rmse.tolist()):
            if math.isfinite(value):
                self.samples.append((value, [m[j, 0].cpu().numpy() for m in maps]))
        self.samples.sort(key=lambda s: s[0])
        if len(self.samples) > 2 * self.n:
            self.samples = self.samples[: self.n] + self.samples[-self.n :]

    def best_and_worst(self) -> tuple[list, list]:
        """Returns (best, worst): lists of (RMSE, [maps (H, W)]), best first and worst first."""
        k = min(self.n, len(self.samples) // 2) or len(self.samples)
        return self.samples[:k], self.samples[-k:][::-1] if len(self.samples) > k else []


@torch.no_grad()
def measure_split(predictor: Predictor, datamodule, split: str) -> dict:
    """Returns the decomposition's statistics on a split: the protocol metrics, the structure
    metrics (analysis low-pass kernel from the image size), how much of the final's variation
    the base explains, the mean-depth predictors' metrics, each head's spread across recordings per
    pixel (saturation.py) and the best and worst samples."""
    check_sample_rate(predictor, datamodule, split)
    structure = StructureSums(predictor.cfg.image_size)
    per_image, extremes = [], ExtremeSamples(N_EXAMPLES)
    residual_sq, final_var = 0.0, 0.0
    spread = PixelSpread.for_predictor(predictor)
    for b, p in predictor.predict_loader(datamodule.loader(split, batch_size=EVAL_BATCH_SIZE)):
        gt = b["depth_m"]
        valid = (gt > 0).float()
        structure.add(p, gt)
        per = per_image_metrics(p.final_m, gt)
        per_image.append({k: v.cpu() for k, v in per.items()})
        extremes.add(per["rmse"], [p.base_m, p.residual_m, p.final_m, gt])
        spread.add({"base": p.base_m, "residual": p.residual_m})
        n = valid.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
        final_mean = (p.final_m * valid).sum(dim=(-2, -1), keepdim=True) / n
        residual_sq += float(((p.final_m - p.base_m) ** 2 * valid).sum())
        final_var += float(((p.final_m - final_mean) ** 2 * valid).sum())
    metrics = aggregate({k: torch.cat([q[k] for q in per_image]) for k in (*METRIC_KEYS, "n_valid")})
    best, worst = extremes.best_and_worst()
    return {
        "split": split,
        "metrics": metrics,
        "structure": structure.metrics(),
        "analysis_kernel": structure.kernel,
        # 1 - sum (final - base)^2 / sum (final - its per-image mean)^2 over valid pixels
        "base_explains_final": 1.0 - residual_sq / final_var if final_var > 0 else math.nan,
        "mean_depth_predictors": mean_depth_baselines(datamodule, split),
        "saturation": spread.summary(),
        "best": best,
        "worst": worst,
    }


def training_history(run_dir: RunDir, epochs_planned: int) -> dict:
    """Returns the training history's health: epochs done, non-finite losses, the stop reason,
    loss spikes and the validation curve's trend, from metrics.csv and stop_reason.json."""
    rows = run_dir.read_metrics() if run_dir.metrics.exists() else []
    losses = [r.get("train/loss", math.nan) for r in rows]
    val = [r.get("val/rmse", math.nan) for r in rows]
    spikes = [
        int(r["epoch"])
        for i, r in enumerate(rows)
        if i >= 1 and math.isfinite(losses[i]) and losses[i] > SPIKE_FACTOR * min(losses[:i], default=math.inf)
    ]
    stop = json.loads(run_dir.stop_reason.read_text()) if run_dir.stop_reason.exists() else None
    finite_val = [v for v in val if math.isfinite(v)]
    best = min(finite_val) if finite_val else math.nan
    return {
        "epochs_done": len(rows),
        "epochs_planned": epochs_planned,
        "non_finite_epochs": [int(r["epoch"]) for r, v in zip(rows, losses) if not math.isfinite(v)],
        "stop_reason": stop,
        "loss_spikes": spikes,
        "best_val_rmse": best,
        "last_val_rmse": val[-1] if val else math.nan,
        # how far the last validation RMSE lies above the best: a rising curve is a warning
        "val_rise_from_best": (val[-1] / best - 1.0) if val and best > 0 and math.isfinite(val[-1]) else math.nan,
    }
