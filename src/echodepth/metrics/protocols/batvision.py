"""`batvision`: the BatVision dataset paper's evaluation, as its published code computes it; and
`batvision_strict`, the same ground truth and pixels under echodepth's value handling.

Source: github.com/AmandineBtto/Batvision-Dataset, UNetSoundOnly/ (commit bfeef8d, July 2023; test.py
last changed in bcfb2f3):
- ground truth (dataloader/BatvisionV2_Dataset.py lines 45-51): the depth file as float32, mm -> m,
  `depth[depth > max_depth] = max_depth` (30 m; NaN, -inf and negative values left as they are), then
  dataloader/utils_dataset.py lines 14-26: `ToTensor()`, `Resize((256, 256))` (bilinear on a
  tensor), `MinMaxNorm(0, max_depth)`; test.py lines 110-111 multiply it back by max_depth in float32.
- metrics (utils_criterion.py lines 5-40, `compute_errors`, per image, float32 numpy): mask gt > 0,
  no clamp of the prediction, rmse / delta / abs_rel / log10 / mae NaN -> 0 (an infinite value stays),
  then test.py line 128: the plain mean over every image (an image without a valid pixel scores 0).
- torchvision: the repository pins no environment (no environment or requirements file in its
  history). `Resize` antialiases tensors by default only from torchvision 0.17 (January 2024); in 0.15
  and 0.16 the default 'warn' resolves to False for tensors, before 0.15 it was False. The code and the
  paper (IROS 2023) predate 0.17, so the ground truth is resized bilinearly WITHOUT antialiasing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..protocol import aggregate
from .base import PROTOCOLS, EvalProtocol, as_depth_map

DELTA_THRESHOLDS = (1.25, 1.25**2, 1.25**3)  # utils_criterion.py lines 15-17


def published_batvision_metrics(pred_m: torch.Tensor, gt_m: torch.Tensor) -> dict[str, torch.Tensor]:
    """Returns `compute_errors` (utils_criterion.py lines 5-40) per image, before its NaN -> 0: each
    metric's raw value, shape (B,), and `n_valid`.

    pred_m, gt_m: (B, 1, H, W) or (B, H, W) depth in metres. Per pixel in float32, as the published
    arrays are; the means are summed in float64 (numpy sums float32 pairwise: the two differ by float32
    rounding, about 1e-6 relative). A pixel counts where gt > 0; the prediction is not clamped, so a
    zero prediction makes log10 infinite and a negative one makes it NaN while its negative ratio counts
    inside every delta threshold. An image without a valid pixel gets NaN. Raises ValueError when the
    shapes differ.
    """
    if pred_m.shape != gt_m.shape:
        raise ValueError(f"prediction shape {tuple(pred_m.shape)} differs from ground truth shape {tuple(gt_m.shape)}")
    pred = pred_m.detach().float().flatten(1)
    gt = gt_m.detach().float().flatten(1)
    valid = gt > 0
    n = valid.sum(dim=1).double()
    # pixels outside the mask get gt = pred = 1, which adds exactly 0 to every sum below
    g = torch.where(valid, gt, torch.ones_like(gt))
    p = torch.where(valid, pred, torch.ones_like(pred))
    thresh = torch.maximum(g / p, p / g)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return torch.where(valid, x, torch.zeros_like(x)).double().sum(dim=1) / n  # n = 0: NaN, as numpy's

    return {
        "abs_rel": mean((g - p).abs() / g),
        "rmse": mean((g - p) ** 2).sqrt(),
        **{f"delta{i}": mean((thresh < t).float()) for i, t in enumerate(DELTA_THRESHOLDS, start=1)},
        "log10": mean((torch.log10(g) - torch.log10(p)).abs()),
        "mae": mean((g - p).abs()),
        "n_valid": n,
    }


@PROTOCOLS.register("batvision")
class Batvision(EvalProtocol):
    """The BatVision dataset paper's sound-only U-Net evaluation (V2 test RMSE 2.676 m as quoted by
    HTF-EchoDepth): 256 x 256, 0-30 m, gt > 0, its ground truth and its metrics as published (see the
    module docstring for the files and lines)."""

    name = "batvision"
    image_size = 256
    max_depth_m = 30.0
    source = "BatVision dataset paper, sound-only U-Net (V2 test RMSE 2.676 m)"
    gt_resize = (
        "as the published V2 loader: float32 metres, values above 30 m set to 30 m (NaN, -inf, negative kept), "
        "resized bilinearly without antialiasing (torchvision Resize on a tensor, before 0.17), divided by 30 and "
        "multiplied back in float32; invalid zeros blend into their neighbours, which then count where > 0"
    )
    nan_handling = (
        "published: predictions not clamped; an image's NaN metric replaced by 0, the image still counted "
        "(an image without a valid pixel scores 0); an infinite metric stays infinite"
    )
    departures = (
        "the published repository pins no torchvision: the ground truth is resized without antialiasing, as "
        "every torchvision before 0.17 (the code is of July 2023) does; torchvision >= 0.17 would antialias",
        "the ground truth is read as the V2 loader reads it; on BatVision V1 the published V1 loader differs "
        "(max depth 12 m; NaN and negative depths set to 0 and +inf to 12 m before the resize)",
        "per-pixel values in float32 as published, but the means summed in float64 (float32 rounding apart)",
    )

    def clip_ground_truth(self, gt_m: torch.Tensor) -> torch.Tensor:
        """Returns `depth[depth > max_depth] = max_depth` (BatvisionV2_Dataset.py lines 47-48): +inf
        becomes 30 m; NaN, -inf and negative values stay (and do not count: gt > 0)."""
        return torch.where(gt_m > self.max_depth_m, torch.full_like(gt_m, self.max_depth_m), gt_m)

    def ground_truth(self, depth_m, model_side: int | None = None) -> torch.Tensor:
        """Returns the (1, 256, 256) float32 ground truth in metres the published loader and test
        script give, from an (H0, W0) depth map in metres at the file's size, values as in the file."""
        depth = self.clip_ground_truth(as_depth_map(depth_m))
        # ToTensor, then torchvision's tensor Resize: interpolate(bilinear, align_corners=False, antialias=False)
        resized = F.interpolate(
            depth[None, None], size=self.grid(), mode="bilinear", align_corners=False, antialias=False
        )[0]
        return resized / self.max_depth_m * self.max_depth_m  # MinMaxNorm(0, 30), then test.py's * max_depth

    def image_metrics(self, pred_m: torch.Tensor, gt_m: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns `published_batvision_metrics` (counted pixels gt > 0)."""
        return published_batvision_metrics(pred_m, gt_m)

    def aggregate(self, per_image: dict[str, torch.Tensor]) -> dict[str, float]:
        """Returns the mean over every image, an image's NaN metric counted as 0 (`n_nan_replaced` says
        how many (image, metric) values were)."""
        return aggregate(per_image, nan_to_zero=True)


@PROTOCOLS.register("batvision_strict")
class BatvisionStrict(Batvision):
    """`batvision`'s grid, ground truth and pixels under echodepth's value handling (predictions
    clamped to 1 mm, a NaN kept, an image without a valid pixel left out): what the published NaN -> 0
    replacement hides is the difference between the two."""

    name = "batvision_strict"
    source = "batvision's ground truth and pixels, echodepth's NaN handling"
    nan_handling = EvalProtocol.nan_handling
    departures = (
        "not a published protocol: batvision's ground truth and pixels with echodepth's value handling",
        *Batvision.departures[:2],
    )
    image_metrics = EvalProtocol.image_metrics
    aggregate = EvalProtocol.aggregate
