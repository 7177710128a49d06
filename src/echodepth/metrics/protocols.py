"""The named evaluation protocols: which grid, depth range and pixels each paper's numbers count.

Numbers computed under different protocols cannot be compared; `echodepth eval`, the test at the
end of training and `compare` report every protocol here, one of them as the headline (`--protocol`).
Sources: `shared/spec/batvision_format.md` (from the papers' public repositories):
- `echodepth`: this project's own, at the model's depth grid and max depth, pixels gt > 0,
  predictions clamped to 1 mm, a NaN never hidden (validation and best-checkpoint choice use it);
- `batvision`: the BatVision dataset paper's sound-only U-Net (V2 test RMSE 2.676 m as quoted by
  later work), 256 x 256, 30 m, gt > 0, per-image means averaged over images, predictions not
  clamped and, as its published code does, a NaN metric of an image replaced by 0 (the image
  still counted);
- `batvision_strict`: the same pixels with echodepth's handling (clamped, NaN kept), to see what
  the NaN-to-0 replacement hides;
- `htf`: HTF-EchoDepth (V2 RMSE 2.187 m; the U-Net retrained under it 2.413 m), 256 x 256,
  30 m, gt >= 0.5 m;
- `echogeom`: EchoGeom, 128 x 128, 30 m, gt > 0.1 m (its surface-normal metrics are not computed).
The spec does not give the NaN handling of `htf` and `echogeom`: echodepth's is used.

Ground truth on a protocol's grid is read from the dataset's depth files, resized by the loader's
nearest-neighbour resize, then clipped to the protocol's max depth; the prediction is resized
to that grid bilinearly (antialiased when shrinking), see `on_grid`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .protocol import MIN_DEPTH_M, aggregate, per_image_metrics

DEFAULT_PROTOCOL = "echodepth"


@dataclass(frozen=True)
class EvalProtocol:
    """One paper's way of counting: grid side (None: the model's), max depth (None: the model's),
    counted pixels gt > min_gt_m (>= with inclusive), clamping and NaN handling."""

    name: str
    image_size: int | None
    max_depth_m: float | None
    min_gt_m: float = 0.0
    inclusive: bool = False
    clamp_predictions: bool = True  # to MIN_DEPTH_M
    nan_to_zero: bool = False  # the published BatVision code's: a NaN metric of an image counts as 0
    source: str = ""

    @property
    def pixels(self) -> str:
        """Returns the counted pixels in words, e.g. 'gt >= 0.5 m'."""
        return f"gt {'>=' if self.inclusive else '>'} {self.min_gt_m:g} m"

    @property
    def nan_handling(self) -> str:
        """Returns, in words, whether predictions are clamped and what becomes of a NaN metric."""
        if self.nan_to_zero:
            return "published: predictions not clamped; an image's NaN metric replaced by 0, the image still counted"
        return f"echodepth: predictions clamped to {MIN_DEPTH_M * 1000:g} mm; a NaN prediction gives NaN, never hidden"

    def describe(self, model_side: int | None = None, model_max_depth_m: float | None = None) -> dict:
        """Returns the protocol as the metrics JSON states it (resolution, depth range, mask, NaN handling)."""
        side = self.image_size or model_side
        top = self.max_depth_m or model_max_depth_m
        return {
            "resolution": f"{side} x {side}" if side else "the model's",
            "depth_range_m": [0.0, top],
            "pixels": self.pixels,
            "nan_handling": self.nan_handling,
            "source": self.source,
            "definition": asdict(self),
        }


PROTOCOLS: dict[str, EvalProtocol] = {
    p.name: p
    for p in (
        EvalProtocol("echodepth", None, None, source="echodepth's own (validation uses it)"),
        EvalProtocol(
            "batvision",
            256,
            30.0,
            clamp_predictions=False,
            nan_to_zero=True,
            source="BatVision dataset paper, sound-only U-Net (V2 test RMSE 2.676 m)",
        ),
        EvalProtocol("batvision_strict", 256, 30.0, source="batvision's pixels, echodepth's NaN handling"),
        EvalProtocol("htf", 256, 30.0, 0.5, inclusive=True, source="HTF-EchoDepth (V2 test RMSE 2.187 m)"),
        EvalProtocol("echogeom", 128, 30.0, 0.1, source="EchoGeom"),
    )
}


def get_protocol(name: str) -> EvalProtocol:
    """Returns the protocol called `name`; an unknown name is a ConfigError listing the known ones."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {name!r}; expected one of {list(PROTOCOLS)}")
    return PROTOCOLS[name]


def on_grid(pred_m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Returns (B, 1, H, W) predictions resized to `size` bilinearly (antialiased when shrinking)."""
    if tuple(pred_m.shape[-2:]) == tuple(size):
        return pred_m
    return F.interpolate(pred_m.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def protocol_per_image(pred_m: torch.Tensor, gt_m: torch.Tensor, protocol: EvalProtocol) -> dict[str, torch.Tensor]:
    """Returns the per-image metrics of (B, 1, h, w) predictions against (B, 1, H, W) ground truth
    on the protocol's grid (metres): gt clipped to the protocol's max depth, predictions resized."""
    if protocol.max_depth_m is not None:
        gt_m = torch.where(torch.isfinite(gt_m), gt_m.clamp(max=protocol.max_depth_m), gt_m)
    pred_m = on_grid(pred_m, gt_m.shape[-2:])
    clamp = MIN_DEPTH_M if protocol.clamp_predictions else None
    return per_image_metrics(pred_m, gt_m, clamp, protocol.min_gt_m, protocol.inclusive)


def protocol_metrics(pred_m: torch.Tensor, gt_m: torch.Tensor, protocol: EvalProtocol) -> dict[str, float]:
    """Returns the protocol's metrics (abs_rel, rmse, delta1-3, log10, mae) averaged over images."""
    return aggregate(protocol_per_image(pred_m, gt_m, protocol), protocol.nan_to_zero)
