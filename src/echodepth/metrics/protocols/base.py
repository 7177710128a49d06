"""The evaluation protocol's interface and its registry.

A protocol is an `EvalProtocol` subclass registered with `@PROTOCOLS.register("name")`, like a model,
a loss, a dataset layout or an audio feature. Its class attributes say which grid, depth range and
pixels it counts; its methods say how it makes the ground truth on its grid from a dataset's
full-resolution depth file (`ground_truth`), how it clips a ground truth (`clip_ground_truth`),
what it computes per image (`image_metrics`) and how it averages over images (`aggregate`). The
defaults are echodepth's own handling; a protocol with other behaviour overrides only what differs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...registry import Registry
from ..protocol import MIN_DEPTH_M, aggregate, per_image_metrics

PROTOCOLS = Registry("evaluation protocol")
DEFAULT_PROTOCOL = "echodepth"


def on_grid(pred_m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Returns (B, 1, H, W) predictions resized to `size` bilinearly (antialiased when shrinking)."""
    if tuple(pred_m.shape[-2:]) == tuple(size):
        return pred_m
    return F.interpolate(pred_m.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def as_depth_map(depth_m) -> torch.Tensor:
    """Returns an (H, W) depth map (a tensor, or anything numpy reads as an array, metres) as a float32
    tensor; a map that is not 2-D (a trailing or leading axis of 1 allowed) is a ValueError."""
    depth = torch.as_tensor(depth_m if isinstance(depth_m, torch.Tensor) else np.asarray(depth_m)).squeeze()
    if depth.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {tuple(depth.shape)}")
    return depth.float()


class EvalProtocol:
    """One paper's way of counting; the base class is echodepth's own handling.

    Class attributes: `image_size` (grid side, None: the model's), `max_depth_m` (None: the model's),
    counted pixels gt > `min_gt_m` (>= with `inclusive`), `source` (the paper), `gt_resize` and
    `nan_handling` (in words), `departures` (where it still departs from its paper's code, in words).
    """

    name = "base"
    image_size: int | None = None
    max_depth_m: float | None = None
    min_gt_m = 0.0
    inclusive = False
    source = ""
    gt_resize = (
        "from the full-resolution depth file: NaN, +-inf and values <= 0 set to 0 (invalid), clipped to the max "
        "depth, resized nearest-exact (every pixel a measured depth or invalid)"
    )
    nan_handling = (
        f"echodepth: predictions clamped to {MIN_DEPTH_M * 1000:g} mm; a NaN prediction gives NaN, never hidden; "
        "an image without a valid pixel left out (n_skipped)"
    )
    departures: tuple[str, ...] = ()

    @property
    def pixels(self) -> str:
        """Returns the counted pixels in words, e.g. 'gt >= 0.5 m'."""
        return f"gt {'>=' if self.inclusive else '>'} {self.min_gt_m:g} m"

    def grid(self, model_side: int | None = None) -> tuple[int, int]:
        """Returns the protocol's (H, W) grid; a protocol on the model's grid needs `model_side`
        (ValueError without it)."""
        side = self.image_size or model_side
        if not side:
            raise ValueError(f"protocol {self.name!r} evaluates on the model's grid: give its side")
        return (int(side), int(side))

    def clip_ground_truth(self, gt_m: torch.Tensor) -> torch.Tensor:
        """Returns ground truth (metres, any shape) clipped to the max depth; non-finite values stay
        as they are (and do not count)."""
        if self.max_depth_m is None:
            return gt_m
        return torch.where(torch.isfinite(gt_m), gt_m.clamp(max=self.max_depth_m), gt_m)

    def ground_truth(self, depth_m, model_side: int | None = None) -> torch.Tensor:
        """Returns the (1, H, W) float32 ground truth in metres on the protocol's grid, made from an
        (H0, W0) depth map in metres at the file's own size, its values as the file holds them (see
        `EchoDepthDataset.read_depth_m`). Here: invalid (non-finite, <= 0) -> 0, clipped, nearest-exact.
        """
        depth = as_depth_map(depth_m)
        depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
        depth = self.clip_ground_truth(depth)
        return F.interpolate(depth[None, None], size=self.grid(model_side), mode="nearest-exact")[0]

    def image_metrics(self, pred_m: torch.Tensor, gt_m: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns each metric per image, shape (B,), and `n_valid`, of (B, 1, H, W) predictions and
        ground truth on the same grid (metres); see `metrics.per_image_metrics`."""
        return per_image_metrics(pred_m, gt_m, min_depth=MIN_DEPTH_M, min_gt_m=self.min_gt_m, inclusive=self.inclusive)

    def aggregate(self, per_image: dict[str, torch.Tensor]) -> dict[str, float]:
        """Returns the mean of each metric over images, and the counts it states (see `metrics.aggregate`)."""
        return aggregate(per_image)

    def per_image(self, pred_m: torch.Tensor, gt_m: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns the per-image metrics of (B, 1, h, w) predictions against (B, 1, H, W) ground truth
        on the protocol's grid (metres): the ground truth clipped, the predictions resized (`on_grid`).
        Raises ValueError when the batch sizes differ."""
        gt_m = self.clip_ground_truth(gt_m)
        return self.image_metrics(on_grid(pred_m, gt_m.shape[-2:]), gt_m)

    def definition(self) -> dict:
        """Returns the protocol's settings as the metrics JSON records them."""
        return {
            "name": self.name,
            "image_size": self.image_size,
            "max_depth_m": self.max_depth_m,
            "min_gt_m": self.min_gt_m,
            "inclusive": self.inclusive,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
        }

    def describe(self, model_side: int | None = None, model_max_depth_m: float | None = None) -> dict:
        """Returns the protocol as the metrics JSON states it: resolution, depth range, counted pixels,
        ground-truth resize, NaN handling, source, departures from its paper (the prediction's resize
        among them when the model predicts on another grid) and its definition."""
        side = self.image_size or model_side
        top = self.max_depth_m or model_max_depth_m
        departures = list(self.departures)
        if self.image_size and model_side and model_side != self.image_size:
            departures.append(
                f"the model predicts at {model_side} x {model_side}: its prediction is resized bilinearly "
                f"(antialiased when shrinking) to {self.image_size} x {self.image_size}, where the paper's "
                "model predicts"
            )
        return {
            "resolution": f"{side} x {side}" if side else "the model's",
            "depth_range_m": [0.0, top],
            "pixels": self.pixels,
            "gt_resize": self.gt_resize,
            "nan_handling": self.nan_handling,
            "source": self.source,
            "departures": departures,
            "definition": self.definition(),
        }
