"""The Lightning module: one network and its loss; training in normalised depth, validation in metres."""

from __future__ import annotations

import lightning as L
import torch

from ..data import FEATURE_IMAGE, AudioFeatures, FeatureConfig, prepare_batch, with_feature_image
from ..errors import NonFiniteLossError
from ..losses import build_loss_for_training
from ..metrics import METRIC_KEYS, aggregate, per_image_metrics
from ..models import build_model_for_training
from ..settings.config import TrainConfig
from ..units import depth_norm_to_m
from ..version import __version__
from .checkpoints import random_states, restore_random_states
from .microbatch import accumulate_gradients, choose_micro_batch
from .outputs import write_epoch_outputs
from .schedule import make_lr_schedule, make_optimizer


def checkpoint_metadata(
    cfg: TrainConfig,
    *,
    max_depth_m: float,
    feature_config: FeatureConfig,
    in_channels: int,
    emission: dict | None = None,
) -> dict:
    """Returns what makes a checkpoint self-describing (stored as ckpt["echodepth"]); `emission`
    (the chirp and where it lies in a training window) lets `predict --chirps` cut long recordings."""
    side = cfg.image_size
    return {
        "version": __version__,
        "config": cfg.to_dict(),
        "max_depth_m": max_depth_m,
        "features": feature_config.to_dict(),  # the sample rate of the training data included
        "input_shape": [in_channels, *feature_config.image_size],
        "output_shape": [1, side, side],
        "emission": emission,
    }


class DepthModule(L.LightningModule):
    """Wraps a network and its loss: training in normalised depth, validation metrics in metres."""

    def __init__(
        self, cfg: TrainConfig, max_depth_m: float, feature_config: FeatureConfig, emission: dict | None = None
    ):
        super().__init__()
        # plain values in the checkpoint's hyper_parameters: it loads with weights_only=True
        self.save_hyperparameters(
            {"config": cfg.to_dict(), "max_depth_m": max_depth_m, "features": feature_config.to_dict()}
        )
        self.cfg = cfg  # the run's settings, resolved once, used as they are
        self.max_depth_m = float(max_depth_m)
        self.feature_config = feature_config
        self.emission = emission
        self.model = build_model_for_training(self.cfg, self.feature_config.n_channels)
        self.criterion = build_loss_for_training(self.cfg)
        self.feature_extractor = AudioFeatures(self.feature_config, self.max_depth_m)  # no weights: uncached batches
        self._val_batch_sums: list[dict] = []  # per validation batch: per-image metrics and valid-pixel sums
        self._train_sums: dict[str, torch.Tensor] = {}
        self._figure_samples = None
        self._epoch_lr = float("nan")
        self.automatic_optimization = False  # micro-batches: several backward passes per step
        self.micro_batch_size = None  # chosen in on_fit_start
        self._network = self.model  # what training calls: the model, or its torch.compile wrapper

    def forward(self, feature_image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns the network's (base, residual, final) for (B, C, H, W) feature images, each
        (B, 1, H', W') in normalised depth (depth / max depth)."""
        return self.model(feature_image)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Returns the batch with its waveforms (uncached path) made into feature images, on the device."""
        return with_feature_image(batch, self.feature_extractor)

    @property
    def channels_last(self) -> bool:
        """On CUDA, and on a CPU in bfloat16 (oneDNN's bf16 kernels, AMX or AVX512-BF16, want it)."""
        if not self.cfg.channels_last:
            return False
        return self.device.type == "cuda" or "bf16" in str(self.trainer.precision if self._trainer else "")

    def to_input(self, feature_image: torch.Tensor) -> torch.Tensor:
        """Returns the (B, C, H, W) feature images in the memory format the network runs in."""
        return feature_image.contiguous(memory_format=torch.channels_last) if self.channels_last else feature_image

    def on_fit_start(self):
        """Puts the network in channels-last memory where it pays, wraps it in torch.compile when
        asked, and chooses the micro-batch."""
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.cfg.compile != "none":
            self._network = torch.compile(self.model, mode=None if self.cfg.compile == "default" else self.cfg.compile)
        self.micro_batch_size = self.resolve_micro_batch()

    def resolve_micro_batch(self) -> int:
        """Returns the micro-batch: the configured one, or the largest that fits (see microbatch.py)."""
        batch = self.cfg.batch_size
        if self.cfg.micro_batch_size != "auto":
            return min(int(self.cfg.micro_batch_size), batch)
        side = self.cfg.image_size
        probe = torch.rand(2, self.feature_config.n_channels, side, side, device=self.device)
        depth = torch.rand(2, 1, side, side, device=self.device)

        def step(x):  # one forward and backward, as training runs it
            with self.trainer.precision_plugin.forward_context():
                base, residual, final = self._network(self.to_input(x))
                self.criterion(base.float(), residual.float(), final.float(), depth[: len(x)])["loss"].backward()
            self.model.zero_grad(set_to_none=True)

        choice = choose_micro_batch(batch, self.model, probe, step=step if self.device.type == "cuda" else None)
        if choice["micro_batch_size"] < batch and self.trainer.is_global_zero:
            print(f"batch {batch} runs as micro-batches of {choice['micro_batch_size']} ({choice})")
        return choice["micro_batch_size"]

    def on_train_epoch_start(self):
        """Starts an epoch: the loss's schedule (`set_epoch`), the training sums and the epoch's learning rate."""
        self.criterion.set_epoch(self.current_epoch)
        self._train_sums = {}
        self._epoch_lr = self.optimizers().param_groups[0]["lr"]  # the rate in force this epoch

    @property
    def base_frozen(self) -> bool:
        """Whether this epoch is in the last `freeze_base_epochs`, where only the residual decoder trains."""
        return self.cfg.freeze_base_epochs > 0 and self.current_epoch >= self.cfg.epochs - self.cfg.freeze_base_epochs

    def freeze_base(self) -> None:
        """Fixes the base: its path (see DepthModel.base_path) gets no gradient (AdamW then skips it:
        no step, no weight decay) and its BatchNorm statistics stop moving. Called every step,
        because Lightning puts the whole network back in training mode after each validation."""
        for module in self.model.base_path():
            module.eval()
            module.requires_grad_(False)

    def training_step(self, batch, batch_idx):
        """Runs one optimiser step over a batch (in micro-batches) and returns its loss, a 0-d tensor in
        normalised depth units. A non-finite loss raises NonFiniteLossError before the step, so the
        weights stay those of the last good step; a batch without a valid depth pixel is a DataError."""
        if self.base_frozen:  # the seed code's last phase: the residual decoder alone refines the final
            self.freeze_base()
        b = prepare_batch(batch, self.max_depth_m)
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        micro = self.micro_batch_size or len(b[FEATURE_IMAGE])
        loss_terms = accumulate_gradients(
            self._network,
            self.criterion,
            feature_image=b[FEATURE_IMAGE],
            depth_norm=b["depth_norm"],
            valid=b["valid"],
            micro_batch=micro,
            backward=self.manual_backward,
            prepare=self.to_input,
        )
        loss = loss_terms["loss"]
        if not torch.isfinite(loss):  # before the step: the weights stay those of the last good step
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in loss_terms.items())
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.current_epoch + 1}, step {self.global_step} ({values}); "
                "try a lower --learning_rate or --precision 32-true"
            )
        n = len(b["depth_norm"])
        # per step, under the guide's exact names; metrics.csv holds the epoch means
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in loss_terms.items()}, on_step=True, on_epoch=False, batch_size=n
        )
        for k, v in loss_terms.items():
            self._train_sums[k] = self._train_sums.get(k, 0.0) + v.detach().float() * n
        self._train_sums["n"] = self._train_sums.get("n", 0.0) + torch.tensor(float(n), device=loss.device)
        optimizer.step()
        return loss

    def on_train_epoch_end(self):
        # manual optimisation: the epoch's scheduler step is ours; it runs before the checkpoint
        # callbacks, so last.ckpt holds the rate of the next epoch
        """Steps the per-epoch learning-rate schedule (manual optimisation: the step is ours)."""
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    def validation_step(self, batch, batch_idx):
        """Measures one validation batch: per-image metrics of the final depth (metres) and the valid-pixel
        sums of |base|, |residual| and |final|; keeps the first batch's maps for the epoch's figure."""
        b = prepare_batch(batch, self.max_depth_m)
        outputs = self._network(self.to_input(b[FEATURE_IMAGE]))
        base, residual, final = (depth_norm_to_m(t.float(), self.max_depth_m) for t in outputs)
        gt = b["depth_m"]
        per = per_image_metrics(final, gt)
        valid = b["valid"].float()

        def valid_sum(t):
            return (t * valid).sum().double().reshape(1)

        self._val_batch_sums.append(
            {
                **{k: per[k] for k in (*METRIC_KEYS, "n_valid")},
                "abs_base": valid_sum(base.abs()),
                "abs_residual": valid_sum(residual.abs()),
                "abs_final": valid_sum(final.abs()),
                "valid": valid.sum().double().reshape(1),
            }
        )
        if self._figure_samples is None:
            k = min(self.cfg.n_figure_samples, len(gt))
            self._figure_samples = [t[:k, 0].detach().cpu().numpy() for t in (base, residual, final, gt)]

    def on_validation_epoch_end(self):
        """Logs the epoch's validation metrics and mean magnitudes (metres) over every rank, and
        (rank 0) appends the epoch's row to metrics.csv and writes its figure."""
        val_sums = {k: torch.cat([p[k] for p in self._val_batch_sums]) for k in self._val_batch_sums[0]}
        self._val_batch_sums = []
        if self.trainer.world_size > 1:
            val_sums = {k: self.all_gather(v).reshape(-1) for k, v in val_sums.items()}
        metrics = aggregate({k: val_sums[k] for k in (*METRIC_KEYS, "n_valid")})
        valid = val_sums["valid"].sum().clamp(min=1)
        magnitudes = {f"mean_abs_{k}": float(val_sums[f"abs_{k}"].sum() / valid) for k in ("base", "residual", "final")}
        if self.trainer.sanity_checking:
            self._figure_samples = None
            return
        self.log_dict({f"val/{k}": float(metrics[k]) for k in METRIC_KEYS})
        self.log_dict({f"val/{k}": v for k, v in magnitudes.items()})
        self.log_dict({f"train/{k}": v for k, v in self.criterion.weights().items()})
        record = {"epoch": self.current_epoch + 1, **self.training_means()}
        record.update({f"train/{k}": v for k, v in self.criterion.weights().items()})
        record["lr"] = self._epoch_lr
        record.update({f"val/{k}": metrics[k] for k in METRIC_KEYS})
        record.update({f"val/{k}": v for k, v in magnitudes.items()})
        record["val/n_images"] = metrics["n_images"]
        # written here, before this epoch's checkpoints: a run resumed from last.ckpt always
        # finds its epoch's row
        if self.trainer.is_global_zero:
            write_epoch_outputs(self, record, self._figure_samples)
        self._figure_samples = None

    def training_means(self) -> dict:
        """Returns this epoch's mean training loss terms over every sample (all ranks)."""
        sums = {
            k: v if torch.is_tensor(v) else torch.tensor(v, device=self.device) for k, v in self._train_sums.items()
        }
        if self.trainer.world_size > 1:
            sums = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in sums.items()}
        n = float(sums.pop("n", torch.tensor(1.0)))
        return {f"train/{k}": float(v) / max(n, 1.0) for k, v in sums.items()}

    def configure_optimizers(self):
        """Returns the optimiser (`make_optimizer`) and, when configured, its per-epoch scheduler."""
        optimizer = make_optimizer(self.cfg, self.model.parameters())
        scheduler = make_lr_schedule(self.cfg, optimizer)
        if scheduler is not None:
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Adds the self-describing metadata (`checkpoint_metadata`) and the random states to a checkpoint."""
        checkpoint["echodepth"] = checkpoint_metadata(
            self.cfg,
            max_depth_m=self.max_depth_m,
            feature_config=self.feature_config,
            in_channels=self.feature_config.n_channels,
            emission=self.emission,
        )
        checkpoint["random_states"] = random_states()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restores the random states a checkpoint holds (a resumed run draws as an uninterrupted one)."""
        if "random_states" in checkpoint:
            restore_random_states(checkpoint["random_states"])
