"""`htf`: HTF-EchoDepth's evaluation on BatVision V2, as its published code computes it.

Source: github.com/HTFEchoDepth/HTF-EchoDepth (initial release daeb7fa, July 2026; these files unchanged
since):
- ground truth (htf_echodepth/data/bv2_dataset.py lines 111-115 and 127-128, data/transforms.py lines
  30-39): the depth file as float32, mm -> m, `np.clip(depth_m, 0.0, 30.0)` (NaN kept, -inf and negative
  values to 0, +inf to 30 m), `ToTensor()`, `Resize((256, 256))`, `MinMaxNorm(0, 30)`; scripts/eval_bv2.py
  lines 26-29 score that "depth" item multiplied back by 30 in float32 (bv2_dataset.py's nearest-resized
  "depth_meters", lines 133-139, is not what eval_bv2.py scores).
- metrics (htf_echodepth/metrics/depth_metrics.py lines 9-79, float64): mask gt >= 0.5 m; an image
  without a valid pixel scores 0 on every metric and is averaged in; gt and prediction clamped below at
  1e-6 (`METRIC_EPS`); log10 is a `nanmean` (a NaN pixel left out); a non-finite metric becomes 0; the
  plain mean over every image.
- torchvision: requirements.txt and environment.yml ask `torchvision>=0.15` without a pin; the stated
  verified stack is PyTorch 2.11 (requirements.txt line 2, docs/ENVIRONMENT.md), whose torchvision
  (0.26) antialiases a tensor's `Resize` by default (from 0.17 on). The ground truth is therefore
  resized bilinearly WITH antialiasing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..protocol import METRIC_KEYS
from .base import PROTOCOLS, EvalProtocol, as_depth_map

METRIC_EPS = 1e-6  # depth_metrics.py line 9: both depths clamped below at this value (metres)


def published_htf_metrics(pred_m: torch.Tensor, gt_m: torch.Tensor, min_gt_m: float) -> dict[str, torch.Tensor]:
    """Returns `evaluate_sample` (depth_metrics.py lines 24-67) per image, shape (B,), with `n_valid`
    and `n_replaced` (how many of the image's metrics were non-finite and set to 0).

    pred_m, gt_m: (B, 1, H, W) or (B, H, W) depth in metres, computed in float64 as published. A pixel
    counts where gt >= min_gt_m (0.5 m published; a NaN gt never does); both depths clamped below at 1e-6 (a NaN
    prediction stays NaN: it fails every delta threshold, makes rmse, abs_rel and mae non-finite and is
    left out of log10's nanmean); a non-finite metric is 0; an image without a valid pixel scores 0.
    mae is not in the published code: it is computed in the same way. Raises ValueError when the shapes
    differ.
    """
    if pred_m.shape != gt_m.shape:
        raise ValueError(f"prediction shape {tuple(pred_m.shape)} differs from ground truth shape {tuple(gt_m.shape)}")
    gt = gt_m.detach().double().flatten(1)
    pred = pred_m.detach().double().flatten(1)
    valid = gt >= min_gt_m
    eps = torch.tensor(METRIC_EPS, dtype=torch.float64, device=gt.device)
    # pixels outside the mask get g = p = 1, which adds exactly 0 to every sum below
    g = torch.where(valid, torch.maximum(gt, eps), torch.ones_like(gt))
    p = torch.where(valid, torch.maximum(pred, eps), torch.ones_like(pred))  # maximum keeps a NaN, as np.maximum
    thresh = torch.maximum(g / p, p / g)
    log_error = (torch.log10(g) - torch.log10(p)).abs()
    counted_log = valid & ~torch.isnan(log_error)  # nanmean

    def mean(x: torch.Tensor, counted: torch.Tensor = valid) -> torch.Tensor:
        return torch.where(counted, x, torch.zeros_like(x)).sum(dim=1) / counted.sum(dim=1)

    raw = {
        "abs_rel": mean((g - p).abs() / g),
        "rmse": mean((g - p) ** 2).sqrt(),
        "delta1": mean((thresh < 1.25).double()),
        "delta2": mean((thresh < 1.25**2).double()),
        "delta3": mean((thresh < 1.25**3).double()),
        "log10": mean(log_error, counted_log),
        "mae": mean((g - p).abs()),
    }
    n_valid = valid.sum(dim=1).double()
    # `_safe` (lines 46-47); an image without a valid pixel returns 0 for all (line 33): 0 / 0 is NaN -> 0
    metrics = {k: torch.where(torch.isfinite(v), v, torch.zeros_like(v)) for k, v in raw.items()}
    replaced = sum((~torch.isfinite(v)).double() for v in raw.values()) * (n_valid > 0)
    return {**metrics, "n_valid": n_valid, "n_replaced": replaced}


@PROTOCOLS.register("htf")
class Htf(EvalProtocol):
    """HTF-EchoDepth's evaluation (V2 test RMSE 2.187 m; the dataset paper's U-Net retrained under it
    2.413 m): 256 x 256, 0-30 m, gt >= 0.5 m, its ground truth and its metrics as published (see the
    module docstring for the files and lines)."""

    name = "htf"
    image_size = 256
    max_depth_m = 30.0
    min_gt_m = 0.5
    inclusive = True
    source = "HTF-EchoDepth (V2 test RMSE 2.187 m)"
    gt_resize = (
        "as the published loader: float32 metres clipped to [0, 30] m (NaN kept), resized bilinearly with "
        "antialiasing (torchvision >= 0.17 Resize on a tensor), divided by 30 and multiplied back in float32"
    )
    nan_handling = (
        "published: gt and predictions clamped below at 1e-6 m; NaN pixels left out of log10; a non-finite metric "
        "replaced by 0; an image without a valid pixel scores 0 and is averaged in (n_empty)"
    )
    departures = (
        "the published requirements ask torchvision >= 0.15 without a pin: the ground truth is resized with "
        "antialiasing, as torchvision >= 0.17 (its stated PyTorch 2.11 stack) does; 0.15 or 0.16 would not",
        "mae is not in the published metrics: it is computed in their way (clamped at 1e-6, non-finite -> 0)",
    )

    def clip_ground_truth(self, gt_m: torch.Tensor) -> torch.Tensor:
        """Returns `np.clip(depth_m, 0.0, 30.0)` (bv2_dataset.py line 114): NaN kept, -inf and negative
        values to 0, +inf to 30 m."""
        return gt_m.clamp(min=0.0, max=self.max_depth_m)

    def ground_truth(self, depth_m, model_side: int | None = None) -> torch.Tensor:
        """Returns the (1, 256, 256) float32 ground truth in metres the published loader and evaluation
        script give, from an (H0, W0) depth map in metres at the file's size, values as in the file."""
        depth = self.clip_ground_truth(as_depth_map(depth_m))
        # ToTensor, then torchvision's tensor Resize: interpolate(bilinear, align_corners=False, antialias=True)
        resized = F.interpolate(
            depth[None, None], size=self.grid(), mode="bilinear", align_corners=False, antialias=True
        )
        return resized[0] / self.max_depth_m * self.max_depth_m  # MinMaxNorm(0, 30), then eval_bv2.py's * 30

    def image_metrics(self, pred_m: torch.Tensor, gt_m: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns `published_htf_metrics` (counted pixels gt >= 0.5 m)."""
        return published_htf_metrics(pred_m, gt_m, self.min_gt_m)

    def aggregate(self, per_image: dict[str, torch.Tensor]) -> dict[str, float]:
        """Returns the plain mean of each metric over every image (`aggregate_samples`, depth_metrics.py
        lines 70-79; NaN over no image, as numpy's mean), with `n_images`, `n_skipped` (0), `n_empty` (images
        without a valid pixel, scored 0) and `n_nonfinite_replaced` ((image, metric) values set to 0 in images
        with valid pixels)."""
        out = {k: float(per_image[k].mean()) for k in METRIC_KEYS}
        out["n_images"] = int(per_image["n_valid"].numel())
        out["n_skipped"] = 0
        out["n_empty"] = int((per_image["n_valid"] == 0).sum())
        out["n_nonfinite_replaced"] = int(per_image["n_replaced"].sum())
        return out
