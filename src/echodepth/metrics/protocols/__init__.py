"""The named evaluation protocols: which grid, depth range, pixels and value handling each paper's numbers count.

Numbers computed under different protocols cannot be compared; `echodepth eval`, the test at the end
of training and `compare` report every protocol in `PROTOCOLS`, one of them as the headline
(`--protocol`). Each is a class registered in `PROTOCOLS` (a `Registry`, like the models' and the
losses'), one file each; a new protocol is one more `EvalProtocol` subclass and its registration.
- `echodepth` (own.py): this project's own, at the model's depth grid and max depth, pixels gt > 0,
  predictions clamped to 1 mm, a NaN never hidden (validation and best-checkpoint choice use it);
- `batvision` (batvision.py): the BatVision dataset paper's published code (V2 test RMSE 2.676 m as
  quoted by later work): 256 x 256, 30 m, gt > 0, the ground truth resized bilinearly without
  antialiasing as its loader does, predictions not clamped, a NaN metric replaced by 0;
- `batvision_strict` (batvision.py): batvision's ground truth and pixels under echodepth's handling,
  to see what the NaN-to-0 replacement hides;
- `htf` (htf.py): HTF-EchoDepth's published code (V2 RMSE 2.187 m; the U-Net retrained under it
  2.413 m): 256 x 256, 30 m, gt >= 0.5 m, the ground truth resized bilinearly with antialiasing as its
  loader does, clamp at 1e-6, empty images scored 0, non-finite metrics 0;
- `echogeom` (echogeom.py): EchoGeom's 128 x 128, 30 m, gt > 0.1 m with echodepth's handling (its
  code was not checked).
Each protocol makes its own ground truth on its grid from the dataset's full-resolution depth files
(`EvalProtocol.ground_truth`; `echodepth` uses the loader's); a prediction on another grid is resized
to the protocol's bilinearly (antialiased when shrinking), see `on_grid`. Where a protocol still
departs from its paper, its `departures` say so, and so do the metrics JSON and `echodepth eval`.
"""

from __future__ import annotations

import torch

# each built-in protocol registers itself on import; they are listed in import order, echodepth's own first
from . import own  # noqa: F401
from .base import DEFAULT_PROTOCOL, PROTOCOLS, EvalProtocol, on_grid

# isort: split
from . import batvision  # noqa: F401

# isort: split
from . import htf  # noqa: F401

# isort: split
from . import echogeom  # noqa: F401

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "EvalProtocol",
    "get_protocol",
    "on_grid",
    "protocol_metrics",
    "protocol_per_image",
]


def get_protocol(name: str, **settings) -> EvalProtocol:
    """Returns a new instance of the protocol registered as `name`; an unknown name (or setting) is a
    ConfigError listing the known ones."""
    return PROTOCOLS.build(name, **settings)


def resolve(protocol: EvalProtocol | str) -> EvalProtocol:
    """Returns the protocol itself, or the one registered under a name."""
    return get_protocol(protocol) if isinstance(protocol, str) else protocol


def protocol_per_image(
    pred_m: torch.Tensor, gt_m: torch.Tensor, protocol: EvalProtocol | str
) -> dict[str, torch.Tensor]:
    """Returns the per-image metrics, shape (B,), of (B, 1, h, w) predictions against (B, 1, H, W)
    ground truth on the protocol's grid (metres, e.g. from `protocol.ground_truth`): the ground truth
    clipped as the protocol's loader does, the predictions resized to its grid (`on_grid`)."""
    return resolve(protocol).per_image(pred_m, gt_m)


def protocol_metrics(pred_m: torch.Tensor, gt_m: torch.Tensor, protocol: EvalProtocol | str) -> dict[str, float]:
    """Returns the protocol's metrics (abs_rel, rmse, delta1-3, log10, mae; metres or unitless)
    averaged over images as the protocol does, with the counts it states (n_images, n_skipped, ...).
    pred_m: (B, 1, h, w) depth in metres; gt_m: (B, 1, H, W) in metres on the protocol's grid."""
    protocol = resolve(protocol)
    return protocol.aggregate(protocol.per_image(pred_m, gt_m))
