"""`echodepth diagnose`: the guide's "what to look for" and troubleshooting table, measured on a
trained run, with its advice as flags and a ready command line."""

from __future__ import annotations

from ..errors import ConfigError, MissingFileError
from ..evaluate import EVAL_BATCH_SIZE, datamodule_for
from ..inference.predictor import Predictor
from ..runs.rundir import RunDir
from ..settings.config import TrainConfig
from .checks import Check, run_checks
from .measure import measure_split, training_history
from .report import rerun_command, summary_lines, table, write_files


def settings_differences(checkpoint_cfg: TrainConfig, folder_cfg: TrainConfig) -> list[str]:
    """Returns "name X (checkpoint) vs Y (config.yaml)" for each setting that decides what is
    trained (`resume.MAY_CHANGE` left out: the run's name, epochs, devices, ...) on which a
    checkpoint and a run folder's config.yaml differ; [] when they agree."""
    from ..runs.resume import MAY_CHANGE, data_folder

    differences = []
    folder_values = folder_cfg.to_dict()
    for name, value in sorted(checkpoint_cfg.to_dict().items()):
        if name in MAY_CHANGE:
            continue
        other = folder_values.get(name)
        if name == "data_dir":
            value, other = data_folder(checkpoint_cfg), data_folder(folder_cfg)
        if value != other:
            differences.append(f"{name} {value} (checkpoint) vs {other} (config.yaml)")
    return differences


def check_same_run(run_dir: RunDir, checkpoint_cfg: TrainConfig) -> None:
    """Raises a ConfigError when the run folder's best checkpoint was not trained by the run its
    config.yaml describes (copied from another run folder, or the folder's config edited): its
    metrics would be mixed with this folder's history. A folder without config.yaml is not checked."""
    if not run_dir.config.is_file():
        return
    from ..settings.yaml_files import load_yaml

    try:
        folder_cfg = TrainConfig.from_dict(load_yaml(run_dir.config))
    except ConfigError as err:
        raise ConfigError(f"{run_dir.config}: {err}") from None
    differences = settings_differences(checkpoint_cfg, folder_cfg)
    names = checkpoint_cfg.experiment_name, folder_cfg.experiment_name
    if differences or names[0] != names[1]:
        runs = f"run {names[0]!r}" + (f", the folder's config.yaml is run {names[1]!r}" if names[0] != names[1] else "")
        settings = f"; settings differ: {'; '.join(differences)}" if differences else ""
        raise ConfigError(
            f"{run_dir.best_checkpoint} is not the checkpoint of the run in {run_dir.path}: it was trained by "
            f"{runs}{settings}; diagnose the checkpoint's own run folder (a diagnosis reads the checkpoint's "
            "metrics with the folder's history)"
        )


def diagnose(
    results_dir, split: str = "val", *, device: str = "auto", predictor=None, datamodule=None, progress=True
) -> dict:
    """Returns (and writes into the run folder) the diagnosis of a run's best checkpoint on a split.

    A caller that already holds the run's predictor and data module (the end of `train`) passes them.
    A best checkpoint that is not the folder's run (`check_same_run`), a device this machine lacks
    and a missing best checkpoint are one-line errors before anything is measured.
    """
    run_dir = RunDir(results_dir)
    if predictor is None:
        if not run_dir.best_checkpoint.is_file():
            raise MissingFileError(
                f"{run_dir.path} holds no checkpoints/best.ckpt: not a finished echodepth run folder"
            )
        predictor = Predictor.from_checkpoint(run_dir.best_checkpoint, device=device, batch_size=EVAL_BATCH_SIZE)
        check_same_run(run_dir, predictor.cfg)
    datamodule = datamodule or datamodule_for(predictor, progress=progress)
    measured = measure_split(predictor, datamodule, split)
    history = training_history(run_dir, predictor.cfg.epochs)
    checks = run_checks(measured, history, predictor.cfg, getattr(predictor.network, "decomposes", True))
    diagnosis = {
        "run": run_dir.name,
        "split": split,
        "healthy": all(c.healthy for c in checks),
        "checks": [c.to_dict() for c in checks],
        "command": rerun_command(run_dir, checks),
        "measured": {k: v for k, v in measured.items() if k not in ("best", "worst")},
        "history": history,
    }
    write_files(run_dir, diagnosis, measured, predictor.max_depth_m)
    return diagnosis


__all__ = ["Check", "diagnose", "rerun_command", "summary_lines", "table"]
