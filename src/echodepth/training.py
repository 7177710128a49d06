"""Training on PyTorch Lightning: the data module, the model module, outputs and the train() entry.

Outputs in results/{experiment_name}/: config.yaml, metrics.csv (a row per epoch),
epoch_{N:04d}_decomposition.png, checkpoints/{last,best}.ckpt (self-describing, loadable with
weights_only=True), tensorboard/ and, with use_wandb, a Weights & Biases run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from . import __version__
from .config import TrainConfig, save_yaml
from .data import FeatureConfig, build_cache, build_dataset, collate_batch, prepare_batch
from .losses import build_loss
from .metrics import METRIC_KEYS, aggregate, per_image_metrics
from .models import build_model
from .viz import decomposition_figure


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stops and keeps the last good checkpoint."""


# ---------------------------------------------------------------- data


def synth_config_for(cfg: TrainConfig):
    """Returns the settings of the built-in synthetic data used when no data_dir is given."""
    from .synth import SynthConfig

    side = cfg.synth_image_size
    return SynthConfig(seed=0, n_rooms=cfg.synth_rooms, image_size=(side, side))


def default_synthetic_dir(cfg: TrainConfig) -> Path:
    settings = json.dumps(synth_config_for(cfg).to_dict(), sort_keys=True)
    return Path(cfg.cache_dir) / f"synthetic-{hashlib.sha256(settings.encode()).hexdigest()[:12]}"


class EchoDepthDataModule(L.LightningDataModule):
    """Datasets and loaders of one configuration; builds the synthetic data and caches once (rank 0)."""

    def __init__(self, cfg: TrainConfig, progress: bool = True):
        super().__init__()
        self.cfg = cfg
        self.progress = progress
        self._raw: dict[str, object] = {}
        self._ready: dict[str, object] = {}

    @property
    def root(self) -> Path:
        if self.cfg.data_dir:
            return Path(self.cfg.data_dir)
        if self.cfg.dataset != "synthetic":
            raise ValueError(f"--data_dir is required for dataset {self.cfg.dataset} (the BatVision data is not downloaded by echodepth)")
        return default_synthetic_dir(self.cfg)

    def features(self) -> FeatureConfig:
        side = self.cfg.image_size
        return FeatureConfig(audio_format=self.cfg.audio_format, log=self.cfg.log_compression, image_size=(side, side))

    def prepare_data(self) -> None:
        if not self.cfg.data_dir and self.cfg.dataset == "synthetic":
            from .synth import generate_dataset, is_complete

            synth_cfg = synth_config_for(self.cfg)
            if not is_complete(self.root, synth_cfg):
                print(f"building the built-in synthetic dataset in {self.root} (once)")
                generate_dataset(self.root, synth_cfg, progress=self.progress)
        if not self.root.is_dir():
            raise ValueError(f"--data_dir {self.root} is not a folder")
        if self.cfg.cache:
            for split in ("train", "val"):
                self.dataset(split)

    def raw_dataset(self, split: str):
        if split not in self._raw:
            extra = {"location_blacklist": self.cfg.location_blacklist} if self.cfg.location_blacklist else {}
            self._raw[split] = build_dataset(self.cfg.dataset, self.root, split, features=self.features(), max_depth_m=self.cfg.max_depth, normalize_depth=True, **extra)
        return self._raw[split]

    def dataset(self, split: str):
        """Returns the split as used for training: cached when cfg.cache, else per-sample."""
        if split not in self._ready:
            raw = self.raw_dataset(split)
            self._ready[split] = build_cache(raw, self.cfg.cache_dir, progress=self.progress) if self.cfg.cache else raw
        return self._ready[split]

    @property
    def max_depth_m(self) -> float:
        return self.raw_dataset("train").max_depth_m

    def loader(self, split: str, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        ds = self.dataset(split)
        # the cache serves whole batches from memory-mapped arrays faster than worker processes
        # can pass them back, so it runs in the main process
        workers = 0 if self.cfg.cache else self.cfg.num_workers
        bs = min(batch_size or self.cfg.batch_size, len(ds))
        return DataLoader(ds, batch_size=bs, shuffle=shuffle, drop_last=shuffle and len(ds) > bs, num_workers=workers, collate_fn=collate_batch, persistent_workers=workers > 0)

    def train_dataloader(self):
        return self.loader("train", shuffle=True)

    def val_dataloader(self):
        return self.loader("val")

    def test_dataloader(self):
        return self.loader("test")


# ---------------------------------------------------------------- model


def build_network(cfg: TrainConfig):
    side = cfg.image_size
    settings = {"image_size": (side, side), "max_depth": 1.0}  # the network predicts depth / max_depth
    if cfg.model == "base_residual":
        settings.update(base_channels=cfg.base_channels, bilinear=cfg.bilinear)
    else:
        settings.update(ngf=cfg.base_channels)
    return build_model(cfg.model, **settings)


class DepthModule(L.LightningModule):
    """Wraps a network and its loss: training in normalised depth, validation metrics in metres."""

    def __init__(self, config: dict, max_depth_m: float):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = TrainConfig.from_dict(config)
        self.max_depth_m = float(max_depth_m)
        self.model = build_network(self.cfg)
        self.criterion = build_loss(self.cfg.loss, lambda_recon=self.cfg.lambda_recon, lambda_base=self.cfg.lambda_base, lambda_sparse=self.cfg.lambda_sparse, lowpass_kernel=self.cfg.lowpass_kernel, warmup_epochs=self.cfg.warmup_epochs, freq_cutoff=self.cfg.freq_cutoff)
        self._val_parts: list[dict] = []
        self._train_sums: dict[str, torch.Tensor] = {}
        self._figure_samples = None
        self.epoch_record: dict = {}

    def forward(self, features):
        return self.model(features)

    def on_train_epoch_start(self):
        if hasattr(self.criterion, "set_epoch"):
            self.criterion.set_epoch(self.current_epoch)
        self._train_sums = {}

    def training_step(self, batch, batch_idx):
        b = prepare_batch(batch, self.max_depth_m, normalize_depth=True)
        base, residual, final = self.model(b["features"])
        parts = self.criterion(base.float(), residual.float(), final.float(), b["depth"])
        loss = parts["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss at epoch {self.current_epoch + 1}, step {self.global_step} (" + ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items()) + "); try a lower --learning_rate or --precision 32-true")
        n = len(b["depth"])
        # per step, under the guide's exact names; metrics.csv holds the epoch means
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, on_step=True, on_epoch=False, batch_size=n)
        for k, v in parts.items():
            self._train_sums[k] = self._train_sums.get(k, 0.0) + v.detach().float() * n
        self._train_sums["n"] = self._train_sums.get("n", 0.0) + torch.tensor(float(n), device=loss.device)
        return loss

    def validation_step(self, batch, batch_idx):
        b = prepare_batch(batch, self.max_depth_m, normalize_depth=True)
        base, residual, final = (t.float() * self.max_depth_m for t in self.model(b["features"]))
        gt = b["depth"] * self.max_depth_m
        per = per_image_metrics(final, gt)
        valid = b["valid"].float()
        self._val_parts.append({**{k: per[k] for k in (*METRIC_KEYS, "n_valid")}, "abs_base": (base.abs() * valid).sum().double().reshape(1), "abs_residual": (residual.abs() * valid).sum().double().reshape(1), "abs_final": (final.abs() * valid).sum().double().reshape(1), "valid": valid.sum().double().reshape(1)})
        if self._figure_samples is None:
            k = min(self.cfg.n_figure_samples, len(gt))
            self._figure_samples = [t[:k, 0].detach().cpu().numpy() for t in (base, residual, final, gt)]

    def on_validation_epoch_end(self):
        parts = {k: torch.cat([p[k] for p in self._val_parts]) for k in self._val_parts[0]}
        self._val_parts = []
        if self.trainer.world_size > 1:
            parts = {k: self.all_gather(v).reshape(-1) for k, v in parts.items()}
        metrics = aggregate({k: parts[k] for k in (*METRIC_KEYS, "n_valid")})
        valid = parts["valid"].sum().clamp(min=1)
        magnitudes = {"mean_abs_base": float(parts["abs_base"].sum() / valid), "mean_abs_residual": float(parts["abs_residual"].sum() / valid), "mean_abs_final": float(parts["abs_final"].sum() / valid)}
        if self.trainer.sanity_checking:
            self._figure_samples = None
            return
        self.log_dict({f"val/{k}": float(metrics[k]) for k in METRIC_KEYS})
        self.log_dict({f"val/{k}": v for k, v in magnitudes.items()})
        self.epoch_record = {**{f"val/{k}": metrics[k] for k in METRIC_KEYS}, **{f"val/{k}": v for k, v in magnitudes.items()}, "val/n_images": metrics["n_images"]}

    def on_train_epoch_end(self):
        sums = {k: (v if torch.is_tensor(v) else torch.tensor(v, device=self.device)) for k, v in self._train_sums.items()}
        if self.trainer.world_size > 1:
            sums = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in sums.items()}
        n = float(sums.pop("n", torch.tensor(1.0)))
        record = {"epoch": self.current_epoch + 1}
        record.update({f"train/{k}": float(v) / max(n, 1.0) for k, v in sums.items()})
        record.update({f"train/{k}": v for k, v in self.criterion.weights().items()})
        record["lr"] = self.optimizers().param_groups[0]["lr"]
        record.update(self.epoch_record)
        self.log_dict({f"train/{k}": v for k, v in self.criterion.weights().items()})
        self._write_epoch_outputs(record)
        self._figure_samples = None

    @rank_zero_only
    def _write_epoch_outputs(self, record: dict) -> None:
        out_dir = self.cfg.out_dir
        append_metrics_row(out_dir / "metrics.csv", record)
        if self._figure_samples is not None:
            path = decomposition_figure(*self._figure_samples, out_dir / f"epoch_{record['epoch']:04d}_decomposition.png", self.max_depth_m, title=f"{self.cfg.experiment_name}, epoch {record['epoch']}, val RMSE {record.get('val/rmse', float('nan')):.3f} m")
            for logger in self.loggers:
                if hasattr(logger, "log_image"):  # Weights & Biases
                    logger.log_image(key="val/decomposition", images=[str(path)], step=self.global_step)
                elif isinstance(logger, TensorBoardLogger):
                    import matplotlib.image as mpimg

                    logger.experiment.add_image("val/decomposition", mpimg.imread(path)[..., :3], self.current_epoch, dataformats="HWC")

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay)
        if self.cfg.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.cfg.epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        side = self.cfg.image_size
        checkpoint["echodepth"] = {"version": __version__, "config": self.cfg.to_dict(), "max_depth_m": self.max_depth_m, "input_shape": [2, side, side], "output_shape": [1, side, side]}


def append_metrics_row(path: Path, record: dict) -> None:
    """Appends a row to metrics.csv, dropping rows of this epoch or later (left by a killed
    run that is being resumed) and widening the header when new columns appear."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < record["epoch"]]
    rows.append(record)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_metrics(path) -> list[dict]:
    """Returns metrics.csv as a list of dicts of floats."""
    with open(path, newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file and renames it: a run killed while saving keeps
    its previous checkpoint intact. Loads with weights_only=True (no pickled code runs)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


# ---------------------------------------------------------------- entry point


def mean_depth_baselines(datamodule: EchoDepthDataModule, split: str) -> dict[str, dict]:
    """Returns the metrics on `split` of two predictors that ignore the audio: the training set's
    mean depth (one number) and its per-pixel mean depth map."""
    max_depth = datamodule.max_depth_m
    total, count = 0.0, 0.0
    for batch in datamodule.loader("train", batch_size=256):
        b = prepare_batch(batch, max_depth, True)
        total = total + (b["depth"] * b["valid"]).sum(0)
        count = count + b["valid"].float().sum(0)
    per_pixel = (total / count.clamp(min=1)) * max_depth
    scalar = float((total.sum() / count.sum()) * max_depth)
    per = {"mean_depth": [], "per_pixel_mean_depth": []}
    for batch in datamodule.loader(split, batch_size=256):
        b = prepare_batch(batch, max_depth, True)
        gt = b["depth"] * max_depth
        per["mean_depth"].append(per_image_metrics(torch.full_like(gt, scalar), gt))
        per["per_pixel_mean_depth"].append(per_image_metrics(per_pixel.expand_as(gt), gt))
    return {name: aggregate({k: torch.cat([p[k] for p in parts]) for k in parts[0]}) for name, parts in per.items()}


def resolve_resume(cfg: TrainConfig) -> str | None:
    if not cfg.resume:
        return None
    path = cfg.out_dir / "checkpoints" / "last.ckpt" if cfg.resume == "last" else Path(cfg.resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: checkpoint {path} not found")
    return str(path)


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Trains one configuration; returns the paths of its outputs and its metrics.

    Ends by evaluating the best checkpoint on the test split, next to the two mean-depth
    predictors, when the dataset has a test split.
    """
    from .evaluate import evaluate_module

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    ckpt_path = resolve_resume(cfg)
    datamodule = EchoDepthDataModule(cfg, progress=progress)
    datamodule.prepare_data()
    if not cfg.data_dir:  # record where the data is, so that the checkpoint finds it again
        cfg.data_dir = str(datamodule.root.resolve())
    if cfg.max_depth is None:
        cfg.max_depth = datamodule.max_depth_m
    out_dir = cfg.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, out_dir / "config.yaml")
    module = DepthModule(cfg.to_dict(), datamodule.max_depth_m)
    checkpoints = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor="val/rmse", mode="min", save_last=True, save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    loggers = [TensorBoardLogger(save_dir=str(out_dir), name="tensorboard", version="")]
    if cfg.use_wandb:
        try:
            from lightning.pytorch.loggers import WandbLogger
            import wandb  # noqa: F401
        except ImportError:
            raise ValueError("--use_wandb needs the wandb package: pip install 'echodepth[wandb]'") from None
        loggers.append(WandbLogger(project=cfg.wandb_project, name=cfg.experiment_name, save_dir=str(out_dir), config=cfg.to_dict()))
    n_devices = cfg.devices * cfg.num_nodes
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if n_devices > 1 else "auto",
        precision=cfg.precision,
        logger=loggers,
        callbacks=[checkpoints, LearningRateMonitor(logging_interval="epoch")],
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        # every 10 steps, or every step when an epoch is shorter than that
        log_every_n_steps=max(1, min(10, len(datamodule.dataset("train")) // (cfg.batch_size * n_devices))),
        enable_progress_bar=progress,
        enable_model_summary=progress,
        default_root_dir=str(out_dir),
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    seconds = time.perf_counter() - start
    result = {"out_dir": str(out_dir), "best_checkpoint": checkpoints.best_model_path, "last_checkpoint": str(out_dir / "checkpoints" / "last.ckpt"), "fit_seconds": seconds}
    if cfg.use_wandb and trainer.global_rank == 0:
        loggers[-1].experiment.finish()  # flush the run now, not at interpreter exit
    if trainer.global_rank != 0:
        return result
    split = "test"
    try:
        datamodule.dataset(split)
    except (ValueError, OSError) as err:  # a dataset without a test split still trains
        print(f"no test evaluation: {err}")
        return result
    test = evaluate_module(checkpoints.best_model_path, datamodule, split, progress=progress)
    baselines = mean_depth_baselines(datamodule, split)
    result.update({"test": test, "baselines": baselines})
    (out_dir / "test_metrics.json").write_text(json.dumps({"split": split, "model": test, **baselines}, indent=2))
    return result


def format_comparison(result: dict) -> str:
    """Returns the test metrics next to the mean-depth predictors' as a small table."""
    rows = [("model (best checkpoint)", result["test"])] + [(name.replace("_", " ") + " predictor", m) for name, m in result["baselines"].items()]
    keys = ("rmse", "abs_rel", "mae", "delta1", "log10")
    lines = [f"{'test split':<34}" + "".join(f"{k:>10}" for k in keys)]
    for name, m in rows:
        lines.append(f"{name:<34}" + "".join(f"{m[k]:>10.4f}" for k in keys))
    best_baseline = min(m["rmse"] for _, m in rows[1:])
    gain = 1 - result["test"]["rmse"] / best_baseline
    lines.append(f"RMSE {100 * gain:.1f}% lower than the better mean-depth predictor" if gain > 0 else f"RMSE {100 * -gain:.1f}% HIGHER than the better mean-depth predictor")
    return "\n".join(lines)
