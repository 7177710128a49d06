"""The results folder of a training run: checked before anything is written, held by one process
while it trains, and made ready (a previous run's outputs refused, or removed with --overwrite).

The folder's files are named by `echodepth.runs.rundir.RunDir`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ConfigError, UserError
from ..settings.config import TrainConfig
from .resume import holds_a_run
from .storage import FileLock, make_dir, remove_stale_partials


class RunInUseError(UserError):
    """Another process trains into the same results folder."""


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


def check_places(cfg: TrainConfig) -> None:
    """Raises a one-line error, before anything is written, when --data_dir is not a folder or
    --results_dir / --cache_dir is a file."""
    if cfg.data_dir and not Path(cfg.data_dir).is_dir():
        raise ConfigError(f"--data_dir {cfg.data_dir} is not a folder")
    for flag, place in (("--results_dir", cfg.results_dir), ("--cache_dir", cfg.cache_dir)):
        if Path(place).exists() and not Path(place).is_dir():
            raise ConfigError(f"{flag} {place} is a file, not a folder")


def prepare_run_folder(cfg: TrainConfig, ckpt_path: str | None) -> None:
    """Makes the results folder ready: created; a previous run's outputs refused or removed
    (`clear_previous_run`) unless this run resumes its own checkpoint; partial files of a killed
    run, the stop reason and the test metrics of an earlier attempt removed (a resumed run is
    unfinished until its test evaluation). Raises ConfigError over a previous run without
    --overwrite or --resume, StorageError when the folder cannot be made."""
    run_dir = cfg.run_dir
    make_dir(run_dir.path, "results folder")
    foreign = ckpt_path is not None and not Path(ckpt_path).resolve().is_relative_to(run_dir.path.resolve())
    if not cfg.resume or (cfg.overwrite and foreign):
        clear_previous_run(run_dir, cfg.overwrite)  # a checkpoint of another run continues afresh here
    remove_stale_partials(run_dir.path)  # left by a run killed while writing
    run_dir.stop_reason.unlink(missing_ok=True)
    run_dir.test_metrics.unlink(missing_ok=True)
