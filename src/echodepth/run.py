"""The `train()` entry: puts the data module, the Lightning module and the trainer together, then
evaluates the best checkpoint on the test split next to the mean-depth predictors.

Outputs in results/{experiment_name}/ (see `echodepth.rundir.RunDir`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from .config import TrainConfig
from .data import cut_length
from .deploy.chirps import synthetic_emission
from .diagnose import diagnose
from .errors import ConfigError, NonFiniteLossError, UserError
from .evaluate import evaluate_split, mean_depth_baselines
from .inference import Predictor
from .interrupt import stop_on_signals
from .resume import holds_a_run, resolve_resume
from .settings_yaml import save_yaml
from .storage import FileLock, atomic_write_text, make_dir, remove_stale_partials
from .training import AtomicCheckpointIO, DepthModule, EchoDepthDataModule, LastCheckpoint, SafeTensorBoardLogger
from .training.loggers import safe_wandb_logger


class RunInUseError(UserError):
    """Another process trains into the same results folder."""


def make_loggers(cfg: TrainConfig) -> list:
    run_dir = cfg.run_dir
    loggers = [SafeTensorBoardLogger(save_dir=str(run_dir.path), name=run_dir.tensorboard.name, version="")]
    if cfg.use_wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError("--use_wandb needs the wandb package: pip install 'echodepth[wandb]'") from None
        loggers.append(
            safe_wandb_logger(
                project=cfg.wandb_project, name=cfg.experiment_name, save_dir=str(run_dir.path), config=cfg.to_dict()
            )
        )
    return loggers


def cpu_has_native_bf16() -> bool:
    """Returns whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): elsewhere
    bf16 on a CPU is emulated and slower than float32."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # torch versions without these probes
        return False


def resolve_precision(cfg: TrainConfig) -> str:
    """Returns the precision to train in: --precision, or for auto bf16-mixed on a GPU that has
    bf16, 16-mixed on another CUDA GPU, 32-true on a CPU; auto-bf16 is auto, except bf16-mixed
    on a CPU with native bf16 (the CPU preset's: 16% faster there)."""
    if cfg.precision not in ("auto", "auto-bf16"):
        return cfg.precision
    on_gpu = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
    if not on_gpu:
        return "bf16-mixed" if cfg.precision == "auto-bf16" and cpu_has_native_bf16() else "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def make_trainer(cfg: TrainConfig, checkpoints: ModelCheckpoint, loggers: list, steps_per_epoch: int, progress: bool):
    n_devices = cfg.devices * cfg.num_nodes
    return L.Trainer(
        max_epochs=cfg.epochs,
        check_val_every_n_epoch=cfg.val_every,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy="ddp" if n_devices > 1 else "auto",
        precision=resolve_precision(cfg),
        benchmark=cfg.cudnn_benchmark if torch.cuda.is_available() else None,
        logger=loggers,
        # best first, then last: last.ckpt then holds the best-checkpoint state of its epoch
        callbacks=[
            WriteConfig(cfg),
            checkpoints,
            LastCheckpoint(cfg.run_dir.last_checkpoint, every_n_epochs=cfg.checkpoint_every),
            LearningRateMonitor(logging_interval="epoch"),
        ],
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        # every 10 steps, or every step when an epoch is shorter than that
        log_every_n_steps=max(1, min(10, steps_per_epoch)),
        enable_progress_bar=progress,
        enable_model_summary=progress,
        default_root_dir=str(cfg.run_dir.path),
    )


class WriteConfig(Callback):
    """Writes config.yaml when training starts: after a resumed checkpoint has loaded, so that a
    failed resume leaves the run's config.yaml as it was."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:  # resume and overwrite are what this invocation does, not settings
            values = {**self.cfg.to_dict(), "resume": None, "overwrite": False}
            save_yaml(TrainConfig.from_dict(values), self.cfg.run_dir.config)


def is_launching_process() -> bool:
    """Whether this is the process a user started (not a DDP worker Lightning launched)."""
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def hold_run_folder(run_dir) -> FileLock | None:
    """Takes the run folder's lock, or raises a one-line error naming the process holding it."""
    if not is_launching_process():
        return None
    lock = FileLock(run_dir.lock)
    if not lock.acquire(blocking=False):
        raise RunInUseError(
            f"results folder {run_dir.path} is in use by process {lock.holder()} (another echodepth train); "
            "wait for it to end, or choose another --experiment_name"
        )
    return lock


def clear_previous_run(run_dir, overwrite: bool) -> None:
    """Refuses to start afresh over a previous run's checkpoints (they would be lost), unless
    overwrite: then removes that run's outputs."""
    if not holds_a_run(run_dir):
        return
    if not overwrite:
        raise ConfigError(
            f"results folder {run_dir.path} holds a previous run; continue it with --resume last, "
            "start afresh with --overwrite (its outputs are removed), or choose another --experiment_name"
        )
    for child in run_dir.path.iterdir():
        if child.name != run_dir.lock.name:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def emission_of(datamodule) -> dict | None:
    """Returns the chirp and its place in a training window (synthetic data), for long recordings."""
    features = datamodule.features
    window = cut_length(datamodule.max_depth_m, features.sample_rate_hz) if features.cut else None
    return synthetic_emission(datamodule.raw_dataset("train"), window)


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Trains one configuration; returns the paths of its outputs and its metrics.

    Ends by evaluating the best checkpoint on the test split, next to the two mean-depth
    predictors, when the dataset has a test split, and with the diagnosis of the run. The run
    folder is held (a lock) while this runs: a second run into it is refused.
    """
    check_places(cfg)
    ckpt_path = resolve_resume(cfg)  # read only: a refused resume writes nothing
    lock = hold_run_folder(cfg.run_dir)
    try:
        if lock is None:  # a DDP worker: its launcher handles the signals
            return _train(cfg, ckpt_path, progress)
        with stop_on_signals("resume with --resume last"):
            return _train(cfg, ckpt_path, progress)
    finally:
        if lock is not None:
            lock.release()


def check_places(cfg: TrainConfig) -> None:
    """Raises a one-line error, before anything is written, when --data_dir is not a folder or
    --results_dir / --cache_dir is a file."""
    if cfg.data_dir and not Path(cfg.data_dir).is_dir():
        raise ConfigError(f"--data_dir {cfg.data_dir} is not a folder")
    for flag, place in (("--results_dir", cfg.results_dir), ("--cache_dir", cfg.cache_dir)):
        if Path(place).exists() and not Path(place).is_dir():
            raise ConfigError(f"{flag} {place} is a file, not a folder")


def _train(cfg: TrainConfig, ckpt_path: str | None, progress: bool) -> dict:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")
    datamodule = EchoDepthDataModule(cfg, progress=progress)
    datamodule.prepare_data()
    if not cfg.data_dir:  # record where the data is, so that the checkpoint finds it again
        cfg.data_dir = str(datamodule.root.resolve())
    if cfg.max_depth_m is None:
        cfg.max_depth_m = datamodule.max_depth_m
    if cfg.depth_unit is None:  # record the unit read, so that a resume naming it is the same run
        cfg.depth_unit = datamodule.raw_dataset("train").depth_unit
    run_dir = cfg.run_dir
    make_dir(run_dir.path, "results folder")
    foreign = ckpt_path is not None and not Path(ckpt_path).resolve().is_relative_to(run_dir.path.resolve())
    if not cfg.resume or (cfg.overwrite and foreign):
        clear_previous_run(run_dir, cfg.overwrite)  # a checkpoint of another run continues afresh here
    remove_stale_partials(run_dir.path)  # left by a run killed while writing
    run_dir.stop_reason.unlink(missing_ok=True)
    run_dir.test_metrics.unlink(missing_ok=True)  # a resumed run is unfinished until its test evaluation
    checkpoints = ModelCheckpoint(
        dirpath=run_dir.checkpoints,
        filename=run_dir.best_checkpoint.stem,
        monitor="val/rmse",
        mode="min",
        save_last=False,
        save_top_k=1,
        save_on_train_epoch_end=True,  # after the epoch's validation, before last.ckpt
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    loggers = make_loggers(cfg)
    steps_per_epoch = len(datamodule.dataset("train")) // (cfg.batch_size * cfg.devices * cfg.num_nodes)
    trainer = make_trainer(cfg, checkpoints, loggers, steps_per_epoch, progress)
    if trainer.precision != resolve_precision(cfg):  # e.g. 16-mixed on a CPU runs as bf16-mixed
        print(f"precision {cfg.precision} is not available here; training in {trainer.precision}")
    cfg.precision = trainer.precision  # config.yaml records what was used
    module = DepthModule(cfg.to_dict(), datamodule.max_depth_m, datamodule.features.to_dict(), emission_of(datamodule))
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLossError as err:
        last = run_dir.last_checkpoint
        kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
        if trainer.is_global_zero:
            atomic_write_text(run_dir.stop_reason, json.dumps({"reason": "non-finite loss", "message": str(err)}))
        raise NonFiniteLossError(f"{err}; {kept}") from None
    result = {
        "out_dir": str(run_dir.path),
        "best_checkpoint": checkpoints.best_model_path,
        "last_checkpoint": str(run_dir.last_checkpoint),
        "fit_seconds": time.perf_counter() - start,
    }
    if cfg.use_wandb and trainer.global_rank == 0:
        loggers[-1].experiment.finish()  # flush the run now, not at interpreter exit
    if trainer.global_rank != 0:
        return result
    split = "test"
    if not datamodule.has_split(split):  # a dataset without a test split still trains
        print(f"no test evaluation: {datamodule.root} has no {split} split (no {split}.csv)")
        return result
    predictor = Predictor.from_checkpoint(checkpoints.best_model_path, device="auto")
    test = evaluate_split(predictor, datamodule, split, progress=progress, headline=cfg.protocol)
    baselines = mean_depth_baselines(datamodule, split)
    result.update({"test": test, "baselines": baselines})
    atomic_write_text(run_dir.test_metrics, json.dumps({"split": split, "model": test, **baselines}, indent=2))
    result["diagnosis"] = diagnose(run_dir.path, "val", predictor=predictor, datamodule=datamodule, progress=progress)
    return result
