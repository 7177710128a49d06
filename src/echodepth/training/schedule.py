"""The optimiser and the per-epoch learning-rate schedule of a training run."""

from __future__ import annotations

import math

import torch

from ..settings.config import TrainConfig


def make_optimizer(cfg: TrainConfig, parameters) -> torch.optim.Optimizer:
    """Returns cfg.optimizer over the parameters: AdamW (decoupled weight decay), Adam (L2 weight
    decay, the seed script's), or SGD with momentum 0.9."""
    lr, decay = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "SGD":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=decay)
    return getattr(torch.optim, cfg.optimizer)(parameters, lr=lr, weight_decay=decay)


def warmup_factor(epoch: int, warmup_epochs: int, epochs: int, cosine: bool) -> float:
    """Returns the learning rate of 0-based `epoch` as a fraction of the configured one: (epoch + 1) /
    warmup_epochs during the warm-up, then 1 (no schedule) or a cosine from 1 to 0 over the rest."""
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    if not cosine:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))


class EpochSchedule(torch.optim.lr_scheduler.LambdaLR):
    """A per-epoch learning-rate factor computed from the run's settings (`warmup_factor`), not
    stored: a run resumed with more epochs follows the schedule of its new length from its first
    resumed epoch (the rate of that epoch is set on loading, not left at the stored one).
    Also loads the state of a plain CosineAnnealingLR (cosine without warm-up), as older checkpoints hold."""

    def __init__(self, optimizer, cfg: TrainConfig):
        args = (cfg.lr_warmup_epochs, cfg.epochs, cfg.lr_schedule == "cosine")
        super().__init__(optimizer, lambda epoch: warmup_factor(epoch, *args))

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores the epoch count from a saved scheduler state, then sets each parameter group's
        rate to this schedule's value at that epoch."""
        state = {k: v for k, v in state_dict.items() if k not in ("T_max", "eta_min", "_get_lr_called_within_step")}
        super().load_state_dict({"lr_lambdas": [None] * len(self.lr_lambdas), **state})
        rates = [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
        self._last_lr = rates


def make_lr_schedule(cfg: TrainConfig, optimizer) -> EpochSchedule | None:
    """Returns the per-epoch scheduler of cfg.lr_schedule and cfg.lr_warmup_epochs (None: a constant rate)."""
    if cfg.lr_schedule == "none" and cfg.lr_warmup_epochs == 0:
        return None
    return EpochSchedule(optimizer, cfg)
