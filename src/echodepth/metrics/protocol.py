"""The evaluation protocol: per-image depth metrics over valid pixels, then the mean over images.

One vectorised torch implementation, used by validation, evaluation and comparisons alike, and by
the evaluation protocols built on echodepth's handling (`metrics.protocols`), which choose the
counted pixels (`min_gt_m`, `inclusive`); `batvision` also uses `aggregate(..., nan_to_zero=True)`
(its published code's NaN -> 0), while `batvision`'s and `htf`'s per-image metrics follow their
published code in their own files.
echodepth's own handling differs from the published evaluation code, on purpose:
- predictions are clamped to MIN_DEPTH_M (1 mm) before ratios and logarithms, so a zero or
  negative prediction gives a large but finite error instead of an undefined one;
- a NaN prediction makes the metrics NaN: nothing is ever replaced by 0;
- an image with no valid pixel is left out of the mean and counted in `n_skipped`.
"""

from __future__ import annotations

import torch

MIN_DEPTH_M = 1e-3
METRIC_KEYS = ("abs_rel", "rmse", "delta1", "delta2", "delta3", "log10", "mae")


def per_image_metrics(
    pred: torch.Tensor,
    gt: torch.Tensor,
    *,
    min_depth: float | None = MIN_DEPTH_M,
    min_gt_m: float = 0.0,
    inclusive: bool = False,
) -> dict[str, torch.Tensor]:
    """Returns each metric per image, shape (B,), plus `n_valid` (valid pixels per image).

    pred, gt: (B, 1, H, W) or (B, H, W) depth in metres. A pixel counts where gt is finite and
    gt > min_gt_m (gt >= min_gt_m with `inclusive`). Predictions are clamped to min_depth metres
    (None: not clamped, as the published code: a negative prediction then makes log10 NaN and
    its ratio counts inside every delta threshold). Images with no valid pixel get NaN metrics
    (and n_valid 0). Raises ValueError when the shapes differ.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from ground truth shape {tuple(gt.shape)}")
    pred = pred.detach().double().flatten(1)
    gt = gt.detach().double().flatten(1)
    valid = torch.isfinite(gt) & ((gt >= min_gt_m) if inclusive else (gt > min_gt_m))
    n = valid.sum(dim=1).double()
    # invalid pixels get gt = pred = 1 so that they add exactly 0 to every sum below
    gt_v = torch.where(valid, gt, torch.ones_like(gt))
    pred_v = torch.where(valid, pred if min_depth is None else pred.clamp(min=min_depth), torch.ones_like(pred))
    err = pred_v - gt_v
    ratio = torch.maximum(gt_v / pred_v, pred_v / gt_v)
    vf = valid.double()

    def mean(x: torch.Tensor) -> torch.Tensor:
        return (x * vf).sum(dim=1) / n  # n = 0 gives NaN, marked as skipped by the caller

    return {
        "abs_rel": mean(err.abs() / gt_v),
        "rmse": mean(err**2).sqrt(),
        "delta1": mean((ratio < 1.25).double()),
        "delta2": mean((ratio < 1.25**2).double()),
        "delta3": mean((ratio < 1.25**3).double()),
        "log10": mean((torch.log10(pred_v) - torch.log10(gt_v)).abs()),
        "mae": mean(err.abs()),
        "n_valid": n,
    }


def aggregate(per_image: dict[str, torch.Tensor], nan_to_zero: bool = False) -> dict[str, float]:
    """Returns the mean of each metric over images with at least one valid pixel, with
    `n_images` (images averaged) and `n_skipped` (images without a valid pixel).

    With nan_to_zero (the published BatVision evaluation code's), every image is averaged and an
    image's NaN metric counts as 0 (an image without a valid pixel scores 0 everywhere);
    `n_nan_replaced` says how many (image, metric) values were replaced."""
    if nan_to_zero:
        values = {k: per_image[k] for k in METRIC_KEYS}
        # only NaN: an infinite metric (a zero prediction's log10) stays infinite, as in numpy
        out = {k: float(torch.where(torch.isnan(v), torch.zeros_like(v), v).mean()) for k, v in values.items()}
        out["n_images"] = int(per_image["n_valid"].numel())
        out["n_skipped"] = 0
        out["n_nan_replaced"] = int(sum(int(torch.isnan(v).sum()) for v in values.values()))
        return out
    keep = per_image["n_valid"] > 0
    out = {k: float(per_image[k][keep].mean()) if keep.any() else float("nan") for k in METRIC_KEYS}
    out["n_images"] = int(keep.sum())
    out["n_skipped"] = int((~keep).sum())
    return out


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor, min_depth: float = MIN_DEPTH_M) -> dict[str, float]:
    """Returns the protocol's metrics (abs_rel, rmse, delta1-3, log10, mae; metres) averaged over images."""
    return aggregate(per_image_metrics(pred, gt, min_depth=min_depth))
