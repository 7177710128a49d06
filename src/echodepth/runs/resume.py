"""Resuming a run: the checkpoint to continue from, refused when the run would change.

A resumed run keeps every setting that decides what is trained (model, sizes, data, features,
batch, optimiser, loss, seed); only what extends it (`epochs`) or where and how it runs (devices,
precision, loaders, logging, output places) may differ. Checked before any data is prepared or any
file is written, so a refused resume leaves the run folder as it was.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, MissingFileError
from ..inference.predictor import read_checkpoint, upgrade_metadata
from ..settings.config import TrainConfig
from ..training import default_synthetic_dir

# settings a resumed run may change: they extend the run or say where and how it runs
MAY_CHANGE = {
    "epochs", "val_every", "checkpoint_every", "experiment_name", "results_dir", "resume", "overwrite",
    "accelerator", "devices", "num_nodes", "precision", "micro_batch_size", "channels_last", "cudnn_benchmark",
    "compile", "num_workers", "cache", "cache_dir", "use_wandb", "wandb_project", "n_figure_samples",
    "protocol",  # only the headline of the test report at the end
}  # fmt: skip


def data_folder(cfg: TrainConfig) -> str:
    """Returns the data folder a configuration reads, resolved (the built-in data's when none)."""
    folder = Path(cfg.data_dir) if cfg.data_dir else default_synthetic_dir(cfg)
    return str(folder.resolve())


def changed_settings(stored: TrainConfig, cfg: TrainConfig) -> list[str]:
    """Returns "name old (now new)" for each setting in force in the stored run (its components'
    included) that would change the resumed run, by name."""
    changes = []
    for name, old in sorted(stored.to_dict().items()):
        new = getattr(cfg, name)
        if name in MAY_CHANGE or (name in ("max_depth_m", "depth_unit") and new is None):  # None: the data's, as stored
            continue
        if name == "data_dir":
            old, new = data_folder(stored), data_folder(cfg)
        if name in ("synth_rooms", "synth_image_size") and cfg.data_dir:
            continue  # settings of the built-in data, unused with a data folder
        if old != new:
            changes.append(f"{name} {old} (now {new})")
    return changes


def holds_a_run(run_dir) -> bool:
    """Whether a run folder holds another run's outputs (checkpoints, metrics or test metrics)."""
    outputs = (run_dir.last_checkpoint, run_dir.best_checkpoint, run_dir.metrics, run_dir.test_metrics)
    return any(p.exists() for p in outputs)


def resolve_resume(cfg: TrainConfig) -> str | None:
    """Returns the checkpoint to resume from (--resume PATH, or "last" for this run's last one),
    after checking that it is an echodepth checkpoint whose settings the command line keeps, and
    that a checkpoint of another run does not land in a folder holding a run (unless overwrite).

    Raises MissingFileError, CheckpointError (foreign, damaged or exported file) or ConfigError
    (changed settings, listed in one line; a folder holding another run)."""
    if not cfg.resume:
        return None
    run_dir = cfg.run_dir
    path = run_dir.last_checkpoint if cfg.resume == "last" else Path(cfg.resume)
    if not path.is_file():
        raise MissingFileError(f"--resume: checkpoint {path} not found")
    ckpt = read_checkpoint(path)
    stored = TrainConfig.from_dict(upgrade_metadata(ckpt["echodepth"])["config"])
    changes = changed_settings(stored, cfg)
    if changes:
        raise ConfigError(
            f"--resume {cfg.resume}: the run was trained with other settings: {'; '.join(changes)}; "
            "a resumed run keeps its settings (only --epochs extends it): state them as the run had them "
            f"(e.g. --config {run_dir.config}), or train afresh with another --experiment_name"
        )
    done = int(ckpt.get("epoch", -1)) + 1  # Lightning counts epochs from 0
    if cfg.epochs < done:
        raise ConfigError(
            f"--resume {cfg.resume}: the run has trained {done} epochs already, more than --epochs {cfg.epochs}; "
            f"give --epochs above {done} to extend it"
        )
    own = path.resolve().parent == run_dir.checkpoints.resolve()
    if not own and holds_a_run(run_dir) and not cfg.overwrite:
        raise ConfigError(
            f"--resume {path}: results folder {run_dir.path} holds another run, which this one would mix with; "
            "choose another --experiment_name, or give --overwrite to remove that run's outputs first"
        )
    return str(path)
