"""The `train()` entry: puts the data module, the Lightning module and the trainer together, then
evaluates the best checkpoint on the test split next to the mean-depth predictors.

Outputs in results/{experiment_name}/ (see `echodepth.runs.rundir.RunDir`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from ..data import cut_length
from ..deploy.chirps import synthetic_emission
from ..diagnose import diagnose
from ..errors import NonFiniteLossError
from ..evaluate import evaluate_split, mean_depth_baselines
from ..inference.predictor import Predictor, check_accelerator
from ..settings.config import TrainConfig
from ..settings.yaml_files import save_yaml
from ..training import AtomicCheckpointIO, DepthModule, EchoDepthDataModule, LastCheckpoint, SafeTensorBoardLogger
from ..training.loggers import check_wandb_ready, safe_wandb_logger, start_wandb_run
from .folder import check_places, hold_run_folder, prepare_run_folder
from .interrupt import stop_on_signals
from .resume import resolve_resume
from .rundir import RunDir
from .storage import atomic_write_text


def make_loggers(cfg: TrainConfig) -> list:
    """Returns the run's loggers: TensorBoard in the run folder, and Weights & Biases with --use_wandb,
    its run started (a ConfigError when the wandb package is missing or W&B cannot start a run)."""
    run_dir = cfg.run_dir
    loggers = [SafeTensorBoardLogger(save_dir=str(run_dir.path), name=run_dir.tensorboard.name, version="")]
    if cfg.use_wandb:
        check_wandb_ready()
        wandb_logger = safe_wandb_logger(
            project=cfg.wandb_project, name=cfg.experiment_name, save_dir=str(run_dir.path), config=cfg.to_dict()
        )
        start_wandb_run(wandb_logger)
        loggers.append(wandb_logger)
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
    on a CPU with native bf16 (faster than float32 there for the CPU preset; measure it with
    `python benchmarks/bench_train.py --preset cpu`)."""
    if cfg.precision not in ("auto", "auto-bf16"):
        return cfg.precision
    on_gpu = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
    if not on_gpu:
        return "bf16-mixed" if cfg.precision == "auto-bf16" and cpu_has_native_bf16() else "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def make_trainer(
    cfg: TrainConfig,
    checkpoints: ModelCheckpoint,
    loggers: list,
    steps_per_epoch: int,
    progress: bool,
    *,
    callbacks: Sequence[Callback] = (),
):
    """Returns the Lightning trainer of a configuration: its epochs, devices (DDP over several),
    precision (`resolve_precision`), the config / best / last checkpoint callbacks, then `callbacks`
    (after the checkpoints: a callback that stops the run finds them written), and atomic checkpoint writes."""
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
            *callbacks,
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
        """Writes config.yaml (rank 0), with the precision the trainer runs in."""
        if trainer.is_global_zero:  # resume and overwrite are what this invocation does, not settings
            used = self.cfg.replace(precision=trainer.precision, resume=None, overwrite=False)
            save_yaml(used, self.cfg.run_dir.config)


def emission_of(datamodule) -> dict | None:
    """Returns the chirp and its place in a training window (synthetic data), for long recordings."""
    feature_config = datamodule.feature_config
    window = cut_length(datamodule.max_depth_m, feature_config.sample_rate_hz) if feature_config.cut else None
    return synthetic_emission(datamodule.raw_dataset("train"), window)


def train(cfg: TrainConfig, progress: bool = True, *, callbacks: Sequence[Callback] = ()) -> dict:
    """Trains one configuration; returns the paths of its outputs and its metrics ("best_val_rmse":
    the best checkpoint's validation RMSE in metres, the lowest of metrics.csv's val/rmse).
    `callbacks` are extra Lightning callbacks (`echodepth tune`'s pruning).

    Ends by evaluating the best checkpoint on the test split, next to the two mean-depth
    predictors, when the dataset has a test split, and with the diagnosis of the run. The run
    folder is held (a lock) while this runs: a second run into it is refused.
    """
    check_accelerator(cfg.accelerator)  # a GPU this machine lacks: one line now, not Lightning's traceback
    check_places(cfg)
    if cfg.use_wandb:
        check_wandb_ready()  # no W&B account or package: one line now, not after the data is prepared
    ckpt_path = resolve_resume(cfg)  # read only: a refused resume writes nothing
    lock = hold_run_folder(cfg.run_dir)
    try:
        if lock is None:  # a DDP worker: its launcher handles the signals
            return _train(cfg, ckpt_path, progress, callbacks)
        with stop_on_signals("resume with --resume last"):
            return _train(cfg, ckpt_path, progress, callbacks)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: TrainConfig, ckpt_path: str | None, progress: bool, callbacks: Sequence[Callback]) -> dict:
    """The steps of `train`, in order; returns what `train` returns."""
    seed_everything(cfg.seed)
    datamodule = EchoDepthDataModule(cfg, progress=progress)
    datamodule.prepare_data()
    cfg = with_data_settings(cfg, datamodule)
    prepare_run_folder(cfg, ckpt_path)
    checkpoints = best_checkpoint_callback(cfg.run_dir)
    loggers = make_loggers(cfg)
    trainer = make_trainer(cfg, checkpoints, loggers, steps_per_epoch(cfg, datamodule), progress, callbacks=callbacks)
    cfg = with_precision_used(cfg, trainer)
    module = DepthModule(cfg, datamodule.max_depth_m, datamodule.feature_config, emission_of(datamodule))
    start = time.perf_counter()
    fit(trainer, module, datamodule, ckpt_path=ckpt_path, run_dir=cfg.run_dir)
    result = {
        "out_dir": str(cfg.run_dir.path),
        "best_checkpoint": checkpoints.best_model_path,
        "best_val_rmse": best_val_rmse(cfg.run_dir),
        "last_checkpoint": str(cfg.run_dir.last_checkpoint),
        "fit_seconds": time.perf_counter() - start,
    }
    if cfg.use_wandb and trainer.global_rank == 0:
        loggers[-1].experiment.finish()  # flush the run now, not at interpreter exit
    if trainer.global_rank != 0:
        return result
    return {**result, **evaluate_and_diagnose(cfg, datamodule, checkpoints.best_model_path, progress)}


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch (and the loader workers); on CUDA lets float32 matrix
    products use TF32 ("high"), as Lightning advises for tensor-core GPUs."""
    L.seed_everything(seed, workers=True, verbose=False)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")


def with_data_settings(cfg: TrainConfig, datamodule: EchoDepthDataModule) -> TrainConfig:
    """Returns the configuration with what the data decided filled in: the data folder (so that
    the checkpoint finds it again), the max depth in metres and the depth files' unit (so that a
    resume naming it is the same run). `cfg` itself is left as it is."""
    return cfg.replace(
        data_dir=cfg.data_dir or str(datamodule.root.resolve()),
        max_depth_m=datamodule.max_depth_m if cfg.max_depth_m is None else cfg.max_depth_m,
        depth_unit=cfg.depth_unit or datamodule.raw_dataset("train").depth_unit,
    )


def best_checkpoint_callback(run_dir: RunDir) -> ModelCheckpoint:
    """Returns the callback keeping checkpoints/best.ckpt: the epoch of the lowest validation RMSE."""
    return ModelCheckpoint(
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


def best_val_rmse(run_dir: RunDir) -> float | None:
    """Returns the run's best validation RMSE (metres): the lowest val/rmse of metrics.csv, the epoch
    best.ckpt holds (None before any validation)."""
    if not run_dir.metrics.exists():
        return None
    values = [
        row["val/rmse"] for row in run_dir.read_metrics() if "val/rmse" in row and row["val/rmse"] == row["val/rmse"]
    ]
    return min(values) if values else None


def steps_per_epoch(cfg: TrainConfig, datamodule: EchoDepthDataModule) -> int:
    """Returns the optimiser steps of one epoch: training samples / (batch size x processes)."""
    return len(datamodule.dataset("train")) // (cfg.batch_size * cfg.devices * cfg.num_nodes)


def with_precision_used(cfg: TrainConfig, trainer: L.Trainer) -> TrainConfig:
    """Returns the configuration with the precision the trainer runs in (config.yaml and the
    checkpoint record what was used), saying so when it differs from the one asked for."""
    if trainer.precision != resolve_precision(cfg):  # e.g. 16-mixed on a CPU runs as bf16-mixed
        print(f"precision {cfg.precision} is not available here; training in {trainer.precision}")
    return cfg.replace(precision=trainer.precision)


def fit(trainer: L.Trainer, module: DepthModule, datamodule, *, ckpt_path: str | None, run_dir: RunDir) -> None:
    """Fits the module, from `ckpt_path` when resuming. A non-finite loss stops training: its
    reason goes to stop_reason.json and the NonFiniteLossError raised names the last good
    checkpoint."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLossError as err:
        last = run_dir.last_checkpoint
        kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
        if trainer.is_global_zero:
            atomic_write_text(run_dir.stop_reason, json.dumps({"reason": "non-finite loss", "message": str(err)}))
        raise NonFiniteLossError(f"{err}; {kept}") from None


def evaluate_and_diagnose(
    cfg: TrainConfig, datamodule: EchoDepthDataModule, best_checkpoint: str, progress: bool
) -> dict:
    """Returns the best checkpoint's test metrics ("test"), the mean-depth predictors' ("baselines")
    and the run's diagnosis on the validation split ("diagnosis"), writing test_metrics.json; {}
    with a printed line when the dataset has no test split (it still trains)."""
    split = "test"
    if not datamodule.has_split(split):
        print(f"no test evaluation: {datamodule.root} has no {split} split (no {split}.csv)")
        return {}
    predictor = Predictor.from_checkpoint(best_checkpoint, device="auto")
    test = evaluate_split(predictor, datamodule, split, progress=progress, headline=cfg.protocol)
    baselines = mean_depth_baselines(datamodule, split)
    run_dir = cfg.run_dir
    atomic_write_text(run_dir.test_metrics, json.dumps({"split": split, "model": test, **baselines}, indent=2))
    diagnosis = diagnose(run_dir.path, "val", predictor=predictor, datamodule=datamodule, progress=progress)
    return {"test": test, "baselines": baselines, "diagnosis": diagnosis}
