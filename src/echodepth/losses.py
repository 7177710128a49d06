"""The base + residual losses. Every term is masked: pixels whose ground truth is invalid (0, or not
finite) take no part in any term.

A loss is a `DepthLoss` registered with `@LOSSES.register("name")`, called as `loss(base, residual,
final, gt)` on (B, 1, H, W) normalised depth maps; it returns a dict: "loss" (the scalar to minimise) and
one unweighted scalar per part, for logging. `weights()` gives the weights in force; the fields of its
`Settings` dataclass are its training settings (`--lambda_base`, see `echodepth.settings.components`),
the searched ones with their `echodepth tune` range; `compare_variants` are ablations `compare` runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .registry import CheckedSettings, Registry
from .settings.bounds import bounded
from .settings.search_space import searched, weight

LOSSES = Registry("loss")
LOG_1_25 = 0.22314355131420976  # ln 1.25: the delta1 threshold as a log ratio


def valid_mask(gt: torch.Tensor) -> torch.Tensor:
    """Returns a float mask, 1 where the ground truth holds a measurement (finite and > 0)."""
    return (torch.isfinite(gt) & (gt > 0)).to(gt.dtype)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns the mean of `values` over pixels where mask is 1 (NaN when no pixel is valid: no
    loss is computed from zero pixels; the training step refuses such a batch by name)."""
    return (values * mask).sum() / mask.sum()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns the mean |pred - target| over valid pixels (NaN when there is none)."""
    # where() rather than multiplication: a NaN target at an invalid pixel must not leak in
    diff = torch.where(mask > 0, (pred - target).abs(), torch.zeros_like(pred))
    return diff.sum() / mask.sum()


def lowpass(depth: torch.Tensor, mask: torch.Tensor, kernel: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (LowPass(depth), support): the K x K masked spatial average at the same size.

    Unlike a plain `avg_pool2d(depth, K, stride=1, padding=K//2)`, which divides every window by
    K*K, this divides by the number of *valid* pixels in the window. So invalid pixels (0) and
    the zero padding beyond the image border do not pull the average towards zero: the low-pass
    of a constant map is that constant everywhere, corners included. `support` is 1 where the
    window held at least one valid pixel (always true at valid pixels themselves).
    Even K is allowed: the window then spans K//2 pixels before and K-1-K//2 after.
    """
    if kernel <= 1:
        return torch.where(mask > 0, depth, torch.zeros_like(depth)), mask
    before, after = kernel // 2, kernel - 1 - kernel // 2
    pad = (before, after, before, after)
    clean = torch.where(mask > 0, depth, torch.zeros_like(depth))
    total = F.avg_pool2d(F.pad(clean, pad), kernel, stride=1)
    count = F.avg_pool2d(F.pad(mask, pad), kernel, stride=1)
    support = (count > 1e-6).to(depth.dtype)
    return total / count.clamp(min=1e-6) * support, support


def silog(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, lam: float, eps=1e-3) -> torch.Tensor:
    """Returns the scale-invariant log error sqrt(mean(d^2) - lam * mean(d)^2), d = log pred - log
    target over valid pixels (depths clamped at eps: normalised depth, so eps is 1e-3 of max depth)."""
    safe_target = torch.where(mask > 0, target, torch.ones_like(target))
    d = torch.log(pred.clamp(min=eps)) - torch.log(safe_target.clamp(min=eps))
    d = torch.where(mask > 0, d, torch.zeros_like(d))
    n = mask.sum()  # 0 valid pixels: NaN, never a loss from nothing
    mean_d = d.sum() / n
    return torch.sqrt(((d * d).sum() / n - lam * mean_d * mean_d).clamp(min=1e-8))


@dataclass
class ReconstructionWeights(CheckedSettings):
    """The weights of the guide's loss that every decomposing loss shares (dimensionless, `weight`)."""

    lambda_recon: float = weight(1.0)  # weight of the reconstruction term |final - gt|
    lambda_base: float = weight(0.5, low=0.1, high=4.0, log=True)  # weight of the structural term (base vs low-pass)


@dataclass
class StandardLossSettings(ReconstructionWeights):
    """The settings of the guide's loss (`standard`); raises ConfigError for a kernel under 1 pixel
    or a SILog weight outside [0, 1]."""

    lambda_sparse: float = weight(0.1, low=0.001, high=0.3, log=True)  # weight of the sparsity term |residual|
    lowpass_kernel: int = searched(
        8, low=4, high=16, step=4, above=0, help="side (px) of the K x K average giving the base's target"
    )
    use_silog: bool = False  # scale-invariant log reconstruction term instead of L1 (the seed research script's)
    silog_lambda: float = bounded(0.5, at_least=0, at_most=1)  # SILog's variance weight (0: log RMSE, 1: scale-free)


class DepthLoss(nn.Module):
    """Base class of registered losses: `DepthLoss(**settings)` checks the settings against `Settings`
    (ConfigError naming a bad one, TypeError for an unknown name) and keeps each as an attribute."""

    Settings: type | None = None
    weight_names: tuple[str, ...] = ()  # its settings that weigh a term: those its Settings declare with weight()
    compare_variants: dict[str, dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.Settings is not None and "weight_names" not in vars(cls):
            cls.weight_names = tuple(f.name for f in fields(cls.Settings) if f.metadata.get("weight"))

    def __init__(self, **settings):
        super().__init__()
        if self.Settings is not None:
            for name, value in asdict(self.Settings(**settings)).items():
                setattr(self, name, value)

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of each epoch (0-based); a curriculum uses it."""

    def weights(self) -> dict[str, float]:
        """Returns the weight of each term in force (dimensionless, `weight_names`), for logging."""
        return {name: getattr(self, name) for name in self.weight_names}


@LOSSES.register("standard")
class BaseResidualLoss(DepthLoss):
    """lambda_recon*|final - gt| + lambda_base*|base - LowPass(gt)| + lambda_sparse*|residual|.

    Each term is an L1 mean over valid pixels; LowPass is `lowpass()` with `lowpass_kernel`. With
    `use_silog` the reconstruction term is `silog(final, gt, silog_lambda)` instead (the seed
    research script's option).
    """

    # the guide's ablations: each term off, and a finer and a coarser low-pass
    compare_variants = {
        "no_structural": {"lambda_base": 0.0},
        "no_sparsity": {"lambda_sparse": 0.0},
        "lowpass_4": {"lowpass_kernel": 4},
        "lowpass_16": {"lowpass_kernel": 16},
        "silog": {"use_silog": True},  # the seed research script's reconstruction term
    }
    Settings = StandardLossSettings

    def parts(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        """Returns the unweighted terms: loss_recon, loss_base, loss_sparse."""
        mask = valid_mask(gt)
        target_low, _ = lowpass(gt, mask, self.lowpass_kernel)
        recon = silog(final, gt, mask, lam=self.silog_lambda) if self.use_silog else masked_l1(final, gt, mask)
        return {
            "loss_recon": recon,
            "loss_base": masked_l1(base, target_low, mask),
            "loss_sparse": masked_mean(residual.abs(), mask),
        }

    def forward(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        """Returns {"loss": the weighted sum, and the three unweighted terms} (scalars) for (B, 1, H, W)
        normalised depth maps; NaN when `gt` has no valid pixel."""
        parts = self.parts(base, residual, final, gt)
        w = self.weights()
        total = sum(w[f"lambda_{k}"] * parts[f"loss_{k}"] for k in ("recon", "base", "sparse"))
        return {"loss": total, **parts}


@dataclass
class AdaptiveLossSettings(StandardLossSettings):
    """The standard loss's settings and the curriculum's; raises ConfigError for a negative warm-up."""

    warmup_epochs: int = searched(
        20, low=0, high=20, at_least=0, help="epochs over which the weights reach lambda_base, lambda_recon"
    )
    base_boost: float = bounded(4.0, at_least=0)  # lambda_base's factor at epoch 0 (the guide: 4x, then 1x)
    recon_start: float = bounded(0.1, at_least=0)  # lambda_recon's factor at epoch 0 (the guide: 0.1x, then 1x)


@LOSSES.register("adaptive")
class AdaptiveBaseResidualLoss(BaseResidualLoss):
    """BaseResidualLoss with the guide's curriculum: structure first, accuracy later.

    With t = min(epoch / warmup_epochs, 1), the weights move linearly:
        lambda_base(t)  = lambda_base  * (base_boost  + (1 - base_boost)  * t)   # 4x -> 1x
        lambda_recon(t) = lambda_recon * (recon_start + (1 - recon_start) * t)   # 0.1x -> 1x
    lambda_sparse stays fixed. Call `set_epoch(epoch)` at the start of each epoch; `weights()`
    gives the weights in force, for logging.
    """

    # the seed research script's loss defaults together (its curriculum warms up over 50 epochs)
    compare_variants = {
        "seed_defaults": {"lambda_base": 1.2, "lambda_sparse": 0.05, "lowpass_kernel": 16, "warmup_epochs": 50}
    }
    Settings = AdaptiveLossSettings
    epoch = 0  # the epoch the weights are computed for (set_epoch)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch (0-based) the weights are computed for."""
        self.epoch = int(epoch)

    def progress(self) -> float:
        """Returns how far the warm-up has gone, from 0 (start) to 1 (done)."""
        return min(self.epoch / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0

    def weights(self) -> dict[str, float]:
        """Returns the weights at the current epoch: lambda_recon and lambda_base on their curriculum."""
        t = self.progress()
        return {
            "lambda_recon": self.lambda_recon * (self.recon_start + (1 - self.recon_start) * t),
            "lambda_base": self.lambda_base * (self.base_boost + (1 - self.base_boost) * t),
            "lambda_sparse": self.lambda_sparse,
        }


def frequency_split(depth: torch.Tensor, mask: torch.Tensor, freq_cutoff: float, fill_kernel: int = 8):
    """Returns (low, high) with low + high = the filled depth map, split by an FFT.

    `freq_cutoff` is a fraction of the Nyquist frequency: spatial frequencies with radius
    sqrt(fy^2 + fx^2) <= freq_cutoff * 0.5 cycles/pixel go to `low`, the rest to `high`.
    Invalid pixels are filled before the FFT with the masked local average of valid pixels
    (`lowpass()`), and with the image's mean valid depth where the window holds none, so that
    holes do not create spurious high frequencies (a hole left at 0 is a sharp edge).
    """
    local, support = lowpass(depth, mask, fill_kernel)
    image_mean = (depth * mask).sum(dim=(-2, -1), keepdim=True) / mask.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
    filled = torch.where(mask > 0, depth, torch.where(support > 0, local, image_mean.expand_as(depth)))
    h, w = depth.shape[-2:]
    fy = torch.fft.fftfreq(h, device=depth.device).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=depth.device)[None, :]
    keep = ((fy**2 + fx**2).sqrt() <= freq_cutoff * 0.5).to(depth.dtype)
    low = torch.fft.irfft2(torch.fft.rfft2(filled.float()) * keep, s=(h, w)).to(depth.dtype)
    return low, filled - low


@dataclass
class FrequencyLossSettings(ReconstructionWeights):
    """The frequency-aware loss's settings; raises ConfigError for a cutoff outside (0, 1]."""

    freq_cutoff: float = bounded(
        0.1,
        above=0,
        at_most=1,
        why="a fraction of Nyquist",
        help="the base's band: spatial frequencies up to this fraction of Nyquist",
    )
    lambda_residual: float = weight(0.5)  # weight of |residual - gt_high|


@LOSSES.register("frequency")
class FrequencyAwareBaseResidualLoss(DepthLoss):
    """The final matches the ground truth, the base its low spatial frequencies, the residual the rest.

    loss = lambda_recon*|final - gt| + lambda_base*|base - gt_low| + lambda_residual*|residual - gt_high|
    with (gt_low, gt_high) = frequency_split(gt, freq_cutoff); all L1 means over valid pixels.
    """

    Settings = FrequencyLossSettings

    def forward(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        """Returns {"loss", "loss_recon", "loss_base", "loss_residual_hf"} (scalars) for (B, 1, H, W)
        normalised depth maps; NaN when `gt` has no valid pixel."""
        mask = valid_mask(gt)
        gt_low, gt_high = frequency_split(gt, mask, self.freq_cutoff)
        parts = {
            "loss_recon": masked_l1(final, gt, mask),
            "loss_base": masked_l1(base, gt_low, mask),
            "loss_residual_hf": masked_l1(residual, gt_high, mask),
        }
        w, terms = self.weights(), ("recon", "base", "residual_hf")
        return {"loss": sum(w[f"lambda_{k.removesuffix('_hf')}"] * parts[f"loss_{k}"] for k in terms), **parts}


@dataclass
class HingeSettings(CheckedSettings):
    """The HTF loss's setting (its L1 term is unweighted: a hinge weight of 0 trains plain L1)."""

    hinge_weight: float = bounded(
        0.003, at_least=0, help="HTF-EchoDepth's weight of the log-ratio hinge (shared/spec/batvision_format.md)"
    )


@LOSSES.register("htf")
class LogRatioHingeL1Loss(DepthLoss):
    """HTF-EchoDepth's loss (shared/spec/batvision_format.md) on the final map, over valid pixels: L1 + hinge_weight
    * mean(max(0, |ln(final / gt)| - ln 1.25)), a hinge acting outside the delta1 band (depths clamped at 1e-3)."""

    Settings = HingeSettings

    def forward(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        """Returns {"loss", "loss_l1", "loss_log_hinge"} (scalars) of the (B, 1, H, W) `final` against `gt`."""
        mask = valid_mask(gt)
        log_gt = torch.log(torch.where(mask > 0, gt, torch.ones_like(gt)).clamp(min=1e-3))
        hinge = F.relu((torch.log(final.clamp(min=1e-3)) - log_gt).abs() - LOG_1_25)
        l1, log_hinge = masked_l1(final, gt, mask), masked_mean(hinge, mask)
        return {"loss": l1 + self.hinge_weight * log_hinge, "loss_l1": l1, "loss_log_hinge": log_hinge}


def build_loss(name: str, **settings) -> DepthLoss:
    """Returns the loss registered as `name`; a setting it does not take is an error naming it."""
    return LOSSES.build(name, **settings)


def build_loss_for_training(cfg) -> DepthLoss:
    """Returns the loss a TrainConfig describes (`cfg.loss`), with that loss's settings in force."""
    return build_loss(cfg.loss, **cfg.settings_for("loss"))
