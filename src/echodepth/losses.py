"""The base + residual losses. Every term is masked: pixels whose ground truth is invalid (0,
or not finite) take no part in any term.

A loss is a `DepthLoss` registered with `@LOSSES.register("name")`. It is called as
`loss(base, residual, final, gt)` with (B, 1, H, W) tensors and returns a dict: "loss" (the total
to minimise) and one entry per part, for logging; `weights()` gives the weights in force and
`training_settings(cfg)` says which training settings it takes. `compare_variants` are
ablations `echodepth compare` runs (name -> training settings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .registry import Registry

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


def silog(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, lam: float, eps: float = 1e-3) -> torch.Tensor:
    """Returns the scale-invariant log error sqrt(mean(d^2) - lam * mean(d)^2), d = log pred - log
    target over valid pixels (depths clamped at eps: normalised depth, so eps is 1e-3 of max depth)."""
    d = torch.log(pred.clamp(min=eps)) - torch.log(
        torch.where(mask > 0, target, torch.ones_like(target)).clamp(min=eps)
    )
    d = torch.where(mask > 0, d, torch.zeros_like(d))
    n = mask.sum()  # 0 valid pixels: NaN, never a loss from nothing
    mean_d = d.sum() / n
    return torch.sqrt(((d * d).sum() / n - lam * mean_d * mean_d).clamp(min=1e-8))


class DepthLoss(nn.Module):
    """Base class of registered losses: the defaults of the interface in the module docstring."""

    compare_variants: dict[str, dict] = {}

    @classmethod
    def training_settings(cls, cfg) -> dict:
        """Returns this loss's settings taken from a TrainConfig."""
        return {}

    def set_epoch(self, epoch: int) -> None:
        """Called at the start of each epoch (0-based); a curriculum uses it."""

    def weights(self) -> dict[str, float]:
        return {}


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

    @classmethod
    def training_settings(cls, cfg) -> dict:
        return {
            "lambda_recon": cfg.lambda_recon,
            "lambda_base": cfg.lambda_base,
            "lambda_sparse": cfg.lambda_sparse,
            "lowpass_kernel": cfg.lowpass_kernel,
            "use_silog": cfg.use_silog,
            "silog_lambda": cfg.silog_lambda,
        }

    def __init__(
        self,
        lambda_recon: float = 1.0,
        lambda_base: float = 0.5,
        lambda_sparse: float = 0.1,
        lowpass_kernel: int = 8,
        use_silog: bool = False,
        silog_lambda: float = 0.5,
    ):
        super().__init__()
        self.use_silog = use_silog
        self.silog_lambda = silog_lambda
        if lowpass_kernel < 1:
            raise ConfigError(f"lowpass_kernel must be >= 1, got {lowpass_kernel}")
        self.lambda_recon = lambda_recon
        self.lambda_base = lambda_base
        self.lambda_sparse = lambda_sparse
        self.lowpass_kernel = lowpass_kernel

    def parts(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        """Returns the unweighted terms: loss_recon, loss_base, loss_sparse."""
        mask = valid_mask(gt)
        target_low, _ = lowpass(gt, mask, self.lowpass_kernel)
        return {
            "loss_recon": silog(final, gt, mask, self.silog_lambda) if self.use_silog else masked_l1(final, gt, mask),
            "loss_base": masked_l1(base, target_low, mask),
            "loss_sparse": masked_mean(residual.abs(), mask),
        }

    def weights(self) -> dict[str, float]:
        """Returns the weights in force: lambda_recon, lambda_base, lambda_sparse."""
        return {"lambda_recon": self.lambda_recon, "lambda_base": self.lambda_base, "lambda_sparse": self.lambda_sparse}

    def forward(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        parts = self.parts(base, residual, final, gt)
        w = self.weights()
        total = sum(w[f"lambda_{k}"] * parts[f"loss_{k}"] for k in ("recon", "base", "sparse"))
        return {"loss": total, **parts}


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

    @classmethod
    def training_settings(cls, cfg) -> dict:
        return {**super().training_settings(cfg), "warmup_epochs": cfg.warmup_epochs}

    def __init__(self, warmup_epochs: int = 20, base_boost: float = 4.0, recon_start: float = 0.1, **kwargs):
        super().__init__(**kwargs)  # BaseResidualLoss's weights and lowpass_kernel
        self.warmup_epochs = max(int(warmup_epochs), 0)
        self.base_boost = base_boost
        self.recon_start = recon_start
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def progress(self) -> float:
        """Returns how far the warm-up has gone, from 0 (start) to 1 (done)."""
        if self.warmup_epochs == 0:
            return 1.0
        return min(self.epoch / self.warmup_epochs, 1.0)

    def weights(self) -> dict[str, float]:
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


@LOSSES.register("frequency")
class FrequencyAwareBaseResidualLoss(DepthLoss):
    """The final matches the ground truth, the base its low spatial frequencies, the residual the rest.

    loss = lambda_recon*|final - gt| + lambda_base*|base - gt_low| + lambda_residual*|residual - gt_high|
    with (gt_low, gt_high) = frequency_split(gt, freq_cutoff); all L1 means over valid pixels.
    """

    @classmethod
    def training_settings(cls, cfg) -> dict:
        return {"freq_cutoff": cfg.freq_cutoff, "lambda_recon": cfg.lambda_recon, "lambda_base": cfg.lambda_base}

    def __init__(
        self,
        freq_cutoff: float = 0.1,
        lambda_recon: float = 1.0,
        lambda_base: float = 0.5,
        lambda_residual: float = 0.5,
    ):
        super().__init__()
        if not 0 < freq_cutoff <= 1:
            raise ConfigError(f"freq_cutoff must be in (0, 1] (a fraction of Nyquist), got {freq_cutoff}")
        self.freq_cutoff = freq_cutoff
        self.lambda_recon = lambda_recon
        self.lambda_base = lambda_base
        self.lambda_residual = lambda_residual

    def weights(self) -> dict[str, float]:
        return {
            "lambda_recon": self.lambda_recon,
            "lambda_base": self.lambda_base,
            "lambda_residual": self.lambda_residual,
        }

    def forward(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        mask = valid_mask(gt)
        gt_low, gt_high = frequency_split(gt, mask, self.freq_cutoff)
        parts = {
            "loss_recon": masked_l1(final, gt, mask),
            "loss_base": masked_l1(base, gt_low, mask),
            "loss_residual_hf": masked_l1(residual, gt_high, mask),
        }
        total = (
            self.lambda_recon * parts["loss_recon"]
            + self.lambda_base * parts["loss_base"]
            + self.lambda_residual * parts["loss_residual_hf"]
        )
        return {"loss": total, **parts}


@LOSSES.register("htf")
class LogRatioHingeL1Loss(DepthLoss):
    """HTF-EchoDepth's loss (shared/spec/batvision_format.md) on the final map, over valid pixels: L1 + hinge_weight
    * mean(max(0, |ln(final / gt)| - ln 1.25)), a hinge acting outside the delta1 band (depths clamped at 1e-3)."""

    def __init__(self, hinge_weight: float = 0.003):
        super().__init__()
        self.hinge_weight = hinge_weight

    def forward(self, base, residual, final, gt) -> dict[str, torch.Tensor]:
        mask = valid_mask(gt)
        log_gt = torch.log(torch.where(mask > 0, gt, torch.ones_like(gt)).clamp(min=1e-3))
        hinge = F.relu((torch.log(final.clamp(min=1e-3)) - log_gt).abs() - LOG_1_25)
        l1, log_hinge = masked_l1(final, gt, mask), masked_mean(hinge, mask)
        return {"loss": l1 + self.hinge_weight * log_hinge, "loss_l1": l1, "loss_log_hinge": log_hinge}


def build_loss(name: str, **settings) -> DepthLoss:
    """Returns the loss registered as `name`; a setting it does not take is an error naming it."""
    return LOSSES.build(name, **settings)


def build_loss_for_training(cfg) -> DepthLoss:
    """Returns the loss a TrainConfig describes, with the settings that loss takes from it."""
    return build_loss(cfg.loss, **LOSSES.get(cfg.loss).training_settings(cfg))
